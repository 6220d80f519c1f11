#!/usr/bin/env python
"""Count the CPU instructions a credited notify and a bare form POST cost in the app itself.

Timings on a shared host drift by tens of percent within minutes; instruction counts do not.
This runs requests through the Flask app in one process (no server, no threads: the client side
of the notify path, PostgreSQL's work not included) under ``valgrind --tool=callgrind``:

1. creates a fresh database at ``BENCH_POSTGRES_URL`` (as ``bench_notify.py`` does), with
   pending orders and a correctly signed ``TRADE_SUCCESS`` notify for each;
2. for the notify and for the bare ``/bench/echo`` POST, runs the app twice under callgrind,
   handling ``--warmup`` requests and then ``--warmup + --requests``, and prints the difference
   divided by ``--requests``: start-up, imports and first-use costs cancel out;
3. drops the database.

Requires valgrind (Debian: ``apt-get install -y valgrind``). Takes a few minutes: callgrind runs
Python about 50 times slower.

    .venv/bin/python scripts/count_notify_instructions.py
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def prepare(work: Path, server_url: str, orders: int) -> None:
    import bench_notify as bench

    from app.adapters.db.migrate import upgrade
    from app.adapters.db.scratch import create_database

    name, url = create_database(server_url, "count_notify")
    upgrade(url)
    seeded = bench.seed(url, 1_000, orders)
    bench._init_signer(bench.write_keys(work / "keys"))
    bodies = bench._sign_chunk([(i, number, amount) for i, (number, amount) in enumerate(seeded)])
    (work / "prepared.pickle").write_bytes(pickle.dumps({"url": url, "database": name, "bodies": bodies}))


def serve(work: Path, path: str, start: int, count: int) -> None:
    """Handle bodies[start:start + count] at ``path`` through the app (run under callgrind)."""
    import bench_notify as bench

    prepared = pickle.loads((work / "prepared.pickle").read_bytes())
    os.environ.update(bench.app_environment(prepared["url"], work))  # one line per notify, to /dev/null here
    import logging

    from werkzeug.test import EnvironBuilder

    from bench_app import app

    for handler in logging.getLogger("app").handlers:
        handler.setStream(open(os.devnull, "w"))
    # Every run builds the same requests, so building them cancels out between the two runs.
    environs = [
        EnvironBuilder(
            path=path, method="POST", data=body, content_type="application/x-www-form-urlencoded; charset=utf-8"
        ).get_environ()
        for body in prepared["bodies"]
    ]

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    for environ in environs[start : start + count]:
        assert b"".join(app.wsgi_app(environ, start_response)) == b"success"
    app.extensions["wallet"].db.dispose()


def instructions(work: Path, path: str, start: int, count: int) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, __file__, "--serve", str(work), path, str(start), str(count),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the run under callgrind failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise SystemExit(f"callgrind printed no count:\n{result.stderr[-3000:]}")
    return int(match.group(1))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        work, path, start, count = sys.argv[2:6]
        serve(Path(work), path, int(start), int(count))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests counted, each kind")
    parser.add_argument("--warmup", type=int, default=50, help="requests both runs handle first")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install -y valgrind)", file=sys.stderr)
        return 2

    import bench_notify as bench

    from app.adapters.db.scratch import drop_database

    server_url = os.environ.get("BENCH_POSTGRES_URL", bench.DEFAULT_SERVER_URL)
    work = Path(tempfile.mkdtemp(prefix="count_notify_"))
    prepared = None
    try:
        # The notify credits each order once: the two notify runs take different bodies.
        total = args.warmup + args.requests
        prepare(work, server_url, 2 * total)
        prepared = pickle.loads((work / "prepared.pickle").read_bytes())
        figures = {}
        for label, path, offsets in (
            ("credited notify", "/alipay/notify", (0, total)),
            ("bare form POST", "/bench/echo", (0, 0)),
        ):
            short = instructions(work, path, offsets[0], args.warmup)
            long = instructions(work, path, offsets[1], total)
            figures[label] = (long - short) / args.requests
            print(f"{label}: {figures[label]:,.0f} instructions per request", flush=True)
        print(f"the notify's own work (notify minus bare): "
              f"{figures['credited notify'] - figures['bare form POST']:,.0f} instructions")
        return 0
    finally:
        if prepared is not None:
            drop_database(server_url, prepared["database"])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
