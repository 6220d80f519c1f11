"""Benchmark: parse a generated 100,000-line canonical CSV and print lines per second.

Run from the repository root: ``.venv/bin/python scripts/bench_parse.py [lines]``.
Prints figures only; the test suite has no timed assertions.
"""
from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.adapters.statements import line_identities, parse_statement  # noqa: E402

HEADER = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"


def generate(lines: int, seed: int = 7) -> bytes:
    """Return a canonical CSV of ``lines`` transfers, deterministic for a seed."""
    rng = random.Random(seed)
    rows = [HEADER]
    for n in range(lines):
        fen = rng.randint(1, 5_000_000)
        sign = "-" if rng.random() < 0.3 else ""
        day = 1 + n % 28
        stamp = f"2026-11-{day:02d}" if n % 2 else f"2026-11-{day:02d}T10:{n % 60:02d}:00+08:00"
        tid = f"TX{n:08d}" if n % 3 else ""
        rows.append(
            f"{tid},{stamp},{sign}{fen // 100}.{fen % 100:02d},CNY,"
            f"付款公司{n % 997},6222{n:012d},货款 GC-{rng.randrange(10**6):06d}\n"
        )
    return "".join(rows).encode("utf-8")


def main() -> None:
    """Time parse_statement and line_identities on the generated file."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = generate(count)
    best = best_cpu = float("inf")
    for _ in range(3):
        started, started_cpu = time.perf_counter(), time.process_time()
        statement = parse_statement(data)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - started_cpu)
    assert len(statement.lines) == count
    started = time.perf_counter()
    keys = line_identities(statement.lines)
    keyed = time.perf_counter() - started
    assert len(set(keys)) == count
    size = len(data) / 1e6
    print(f"file: {count} lines, {size:.1f} MB")
    print(f"parse_statement: {best:.3f} s best of 3, {count / best:,.0f} lines/s")
    # CPU time is steadier than wall time when other work shares the machine.
    print(f"parse_statement CPU: {best_cpu:.3f} s, {count / best_cpu:,.0f} lines/s")
    print(f"line_identities: {keyed:.3f} s, {count / keyed:,.0f} lines/s")


if __name__ == "__main__":
    main()
