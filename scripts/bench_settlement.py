"""Benchmark bill settlement (``settle_bill``) on PostgreSQL: spread over many accounts, and hot.

Creates a fresh database on the server at ``BENCH_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), migrates it, seeds accounts with a mix
of coupons, prepaid cards, cash and nothing (arrears), then drives ``settle_bill`` from several
worker processes and prints bills per second. The database is dropped at the end; the ledger is
verified before that.

    .venv/bin/python scripts/bench_settlement.py [--bills 20000] [--hot-bills 4000] [--workers 8] [--hot-workers 8]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from app.adapters.db import Database  # noqa: E402
from app.adapters.db.migrate import upgrade  # noqa: E402
from app.adapters.db.scratch import create_database, drop_database  # noqa: E402
from app.services import ledger  # noqa: E402
from app.services.accounts import add_workspace, create_account  # noqa: E402
from app.services.bills import settle_bill  # noqa: E402
from app.services.clock import Clock  # noqa: E402
from app.services.coupons import allocate_coupon  # noqa: E402
from app.services.locks import lock_account  # noqa: E402
from app.services.prepaid_cards import allocate_prepaid_card  # noqa: E402
from app.services.units import grant_coupon  # noqa: E402

SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PRODUCTS = ["general"] * 7 + ["sms"] * 2 + ["dial_testing"]


def seed(db: Database, clock: Clock, accounts: int) -> list[str]:
    """Create accounts with one workspace each and a mix of funding; return the workspace ids."""
    expires = clock.now() + timedelta(days=365)
    workspaces = []
    for index in range(accounts):
        account = create_account(db, clock, name=f"bench {index}", settlement="guance" if index % 10 else "cloud")
        workspace = f"ws-{index}"
        add_workspace(db, clock, account_id=account.id, workspace_id=workspace)
        workspaces.append(workspace)
        if index % 4 in (0, 1):
            allocate_coupon(db, clock, account_id=account.id, face_value_fen=5_00 + index % 7 * 100,
                            valid_from=None, expires_at=expires, actor="bench")
        if index % 4 == 1:
            with db.transaction() as session:
                grant_coupon(session, lock_account(session, account.id), kind="discount",
                             face_value_fen=8_00, valid_from=clock.now(), expires_at=expires,
                             origin="card_bonus", now=clock.now(), actor="bench")
        if index % 3 == 0:
            for fen in (10_00, 25_00):
                allocate_prepaid_card(db, clock, account_id=account.id, amount_fen=fen, expires_at=expires,
                                      actor="bench")
        if index % 2 == 0:
            with db.transaction() as session:
                ledger.credit_topup(session, lock_account(session, account.id), amount_fen=60_00,
                                    key=f"bench-topup-{index}", kind="topup", now=clock.now())
    return workspaces


def worker(url, workspaces, count, prefix, seed_value, start, results):
    """Settle ``count`` bills on random workspaces; report (first start, last end, failures)."""
    db = Database(url, pool_size=1)
    clock = Clock()
    rng = random.Random(seed_value)
    plan = [(rng.choice(workspaces), rng.choice(PRODUCTS), rng.randint(10, 400)) for _ in range(count)]
    settle_bill(db, clock, bill_id=f"{prefix}-warm", workspace_id=workspaces[0], product="sms", amount_fen=1)
    start.wait()
    began = time.perf_counter()
    failures = 0
    for number, (workspace, product, fen) in enumerate(plan):
        try:
            settle_bill(db, clock, bill_id=f"{prefix}-{number}", workspace_id=workspace, product=product,
                        amount_fen=fen)
        except Exception:  # noqa: BLE001 - counted and reported; a benchmark keeps going
            failures += 1
    results.put((began, time.perf_counter(), failures))
    db.dispose()


def run(url, workspaces, bills, workers, label) -> float:
    """Drive ``bills`` settlements from ``workers`` processes; return bills per second."""
    ctx = mp.get_context("fork")
    start, results = ctx.Barrier(workers), ctx.Queue()
    per_worker = bills // workers
    processes = [
        ctx.Process(target=worker, args=(url, workspaces, per_worker, f"{label}{i}", i, start, results))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    reports = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = max(end for _, end, _ in reports) - min(began for began, _, _ in reports)
    failures = sum(f for _, _, f in reports)
    rate = per_worker * workers / elapsed
    print(f"{label}: {per_worker * workers} bills by {workers} processes in {elapsed:.2f}s "
          f"= {rate:,.0f} bills/s ({failures} failures)")
    return rate


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    return f"nproc {os.cpu_count()}, CPU {cpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--bills", type=int, default=20000)
    parser.add_argument("--hot-bills", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--hot-workers", type=int, default=8)
    args = parser.parse_args()

    name, url = create_database(SERVER_URL, "bench_settlement")
    try:
        upgrade(url)
        db, clock = Database(url), Clock()
        with db.sessions() as session:
            version = session.execute(text("SHOW server_version")).scalar_one()
        began = time.perf_counter()
        workspaces = seed(db, clock, args.accounts)
        print(f"{machine()}, PostgreSQL {version}")
        print(f"seeded {args.accounts} accounts in {time.perf_counter() - began:.1f}s")
        spread = run(url, workspaces, args.bills, args.workers, "spread")
        hot_workspace = workspaces[0]  # coupons, cards and cash, then arrears
        hot = run(url, [hot_workspace], args.hot_bills, args.hot_workers, "hot")
        with db.sessions() as session:
            drawn = session.execute(
                text("SELECT source, count(*) FROM bill_allocations GROUP BY source ORDER BY 2 DESC")
            ).all()
            differences = ledger.verify(session)
        print("allocations by source: " + ", ".join(f"{source} {count}" for source, count in drawn))
        print(f"ledger verify: {len(differences)} difference(s)")
        print(f"RESULT spread {spread:,.0f} bills/s, single hot account {hot:,.0f} bills/s")
        db.dispose()
        if differences:
            sys.exit(1)
    finally:
        drop_database(SERVER_URL, name)


if __name__ == "__main__":
    main()
