"""Benchmark: import and reconcile a 100,000-line statement against 10,000 accounts.

    .venv/bin/python scripts/bench_reconcile.py [--lines 100000] [--accounts 10000]

Runs on PostgreSQL (``BENCH_POSTGRES_URL``, default the local server's ``postgres``
database): a fresh database is created, migrated, and dropped at the end. The file goes
through ``import_statement``, the code path of the upload endpoint: parse, line identities,
classification, bulk insert, credits of the matched lines. Parse-only time is measured in
the same run on the same bytes (best of three), also with the garbage collector paused as
the import pauses it. Prints lines/s end to end, the ratio to parse-only (and the ratio when
the parse inside the import is counted at its parse-only time), the CPU time of this process
and of the PostgreSQL backend during the import (when the server runs on this host), and
the peak RSS of this process.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text  # noqa: E402

from app.adapters.db import Database  # noqa: E402
from app.adapters.db.migrate import upgrade  # noqa: E402
from app.adapters.db.models import (  # noqa: E402
    Account,
    LedgerEntry,
    LedgerTransaction,
    StatementLine,
)
from app.adapters.db.scratch import create_database, drop_database  # noqa: E402
from app.adapters.statements import parse_statement  # noqa: E402
from app.domain.remittance import ALPHABET, generate_code  # noqa: E402
from app.services import ledger  # noqa: E402
from app.services.clock import FrozenClock  # noqa: E402
from app.services.reconcile import reconcile  # noqa: E402
from app.services.statement_import import import_statement  # noqa: E402

SERVER_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
HEADER = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def seed_accounts(db: Database, count: int, rng: random.Random) -> list[str]:
    """Create ``count`` accounts; every tenth owes arrears (booked in the ledger)."""
    codes = set()
    while len(codes) < count:
        codes.add(generate_code())
    codes = sorted(codes)
    rows = [
        {
            "id": f"acc_bench{n:07d}",
            "name": f"Bench {n}",
            "settlement": "guance",
            "remittance_code": code,
            "cash_fen": 0,
            "arrears_fen": 0,
            "invoiceable_fen": 0,
            "created_at": NOW,
        }
        for n, code in enumerate(codes)
    ]
    with db.transaction() as session:
        session.execute(insert(Account), rows)
        for row in rows[::10]:
            account = session.get(Account, row["id"])
            ledger.record(
                session,
                account,
                key=f"bench-arrears:{row['id']}",
                kind="bill",
                now=NOW,
                postings=[ledger.Posting("arrears", rng.randint(1, 50_000))],
            )
    return codes


def generate(lines: int, codes: list[str], rng: random.Random) -> bytes:
    """Return a canonical CSV: 70% coded, 10% near-miss, 10% uncoded, 10% outgoing."""
    rows = [HEADER]
    for n in range(lines):
        fen = rng.randint(1, 5_000_000)
        code = codes[rng.randrange(len(codes))]
        kind = rng.random()
        sign = ""
        if kind < 0.70:
            spelled = rng.choice(
                (code, code.lower(), f"{code[:4]}-{code[4:8]}-{code[8]}", f"{code[:4]} {code[4:]}")
            )
            memo = f"货款 {spelled}"
        elif kind < 0.80:
            at = rng.randrange(len(code))
            typo = code[:at] + rng.choice(ALPHABET.replace(code[at], "")) + code[at + 1 :]
            memo = f"充值 {typo}"
        elif kind < 0.90:
            memo = f"服务费 第{n % 12 + 1}期"
        else:
            sign, memo = "-", "付款 电费"
        day = 1 + n % 28
        stamp = f"2026-11-{day:02d}" if n % 2 else f"2026-11-{day:02d}T10:{n % 60:02d}:00+08:00"
        tid = f"TX{n:08d}" if n % 3 else ""
        rows.append(
            f"{tid},{stamp},{sign}{fen // 100}.{fen % 100:02d},CNY,"
            f"付款公司{n % 997},6222{n % 20000:012d},{memo}\n"
        )
    return "".join(rows).encode("utf-8")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time of a local PostgreSQL backend process, or None when it is not visible."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()

    rng = random.Random(20261126)
    name, url = create_database(SERVER_URL, "bench_reconcile")
    db = None
    try:
        upgrade(url)
        db = Database(url)
        codes = seed_accounts(db, args.accounts, rng)
        data = generate(args.lines, codes, rng)

        # Best of three: a neighbour's burst of load must not flatter the ratio below.
        parse_s = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            parsed = parse_statement(data)
            parse_s = min(parse_s, time.perf_counter() - started)
            assert len(parsed.lines) == args.lines
            del parsed
        # The import pauses the cyclic garbage collector for its whole run, parse included;
        # parse time under the same condition tells how much of the end-to-end time is the
        # parse itself and how much the rest of the import (reported, not the ratio above).
        parse_paused_s = float("inf")
        for _ in range(3):
            gc.disable()
            try:
                started = time.perf_counter()
                parsed = parse_statement(data)
                parse_paused_s = min(parse_paused_s, time.perf_counter() - started)
            finally:
                gc.enable()
            del parsed

        clock = FrozenClock(NOW)
        db.dispose()  # one pooled connection from here on: the backend measured is the import's
        with db.sessions() as session:
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        server_before = backend_cpu_seconds(backend)
        started, started_cpu = time.perf_counter(), time.process_time()
        result = import_statement(db, clock, data=data, filename="bench.csv", actor="bench")
        import_s = time.perf_counter() - started
        client_cpu = time.process_time() - started_cpu
        server_after = backend_cpu_seconds(backend)
        started = time.perf_counter()
        rerun = reconcile(db, clock)
        rerun_s = time.perf_counter() - started

        with db.sessions() as session:
            stored = session.scalar(select(func.count()).select_from(StatementLine))
            txns = session.scalar(select(func.count()).select_from(LedgerTransaction))
            entries = session.scalar(select(func.count()).select_from(LedgerEntry))
            differences = ledger.verify(session)
        assert stored == args.lines and result.lines_new == args.lines
        assert not differences, differences[:5]

        with db.sessions() as session:
            server = session.execute(text("SHOW server_version")).scalar_one()
        print(f"file: {args.lines} lines, {len(data) / 1e6:.1f} MB; {args.accounts} accounts")
        print(f"statuses: {result.counts}")
        print(f"ledger: {txns} transactions, {entries} entries; ledger verify clean")
        print(f"parse only (best of 3): {parse_s:.2f} s, {args.lines / parse_s:,.0f} lines/s")
        print(
            f"import + reconcile end to end: {import_s:.2f} s, "
            f"{args.lines / import_s:,.0f} lines/s, {import_s / parse_s:.2f}x parse-only"
        )
        print(
            f"parse only with the collector paused, as in the import (best of 3): "
            f"{parse_paused_s:.2f} s; the import beyond such a parse: "
            f"{import_s - parse_paused_s:.2f} s, "
            f"{(parse_s + import_s - parse_paused_s) / parse_s:.2f}x parse-only"
        )
        print(
            f"reconcile run over the {rerun['lines']} queued lines: {rerun_s:.2f} s, "
            f"{rerun['lines'] / rerun_s:,.0f} lines/s"
        )
        cpu = f"CPU: this process {client_cpu:.2f} s"
        if server_before is not None and server_after is not None:
            cpu += f", PostgreSQL backend {server_after - server_before:.2f} s"
        print(cpu)
        print(f"peak RSS: {peak_rss_mb():.0f} MB")
        print(f"machine: {os.cpu_count()} CPUs, PostgreSQL {server}")
    finally:
        if db is not None:
            db.dispose()
        drop_database(SERVER_URL, name)


if __name__ == "__main__":
    main()
