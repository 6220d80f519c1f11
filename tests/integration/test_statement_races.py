"""Statement imports racing each other on PostgreSQL: every line is credited once."""
import os
import threading
import time

import pytest
from sqlalchemy import func, select

from app.adapters.db.models import LedgerTransaction
from app.jobs import run_job
from app.services.accounts import create_account
from app.services.statement_inbox import import_inbox
from app.services.tokens import create_token
from tests.integration.statement_helpers import (
    assert_ledger_clean,
    balances,
    csv_file,
    row,
    stored_counts,
    upload,
)

pytestmark = pytest.mark.postgres
THREADS = 8


@pytest.fixture
def pg_app(make_app, pg_url):
    return make_app(pg_url)


@pytest.fixture
def pg_wallet(pg_app):
    return pg_app.extensions["wallet"]


@pytest.fixture
def payer(pg_wallet):
    return create_account(pg_wallet.db, pg_wallet.clock, name="Payer Co", settlement="guance")


def all_at_once(work, count=THREADS):
    """Run ``work(i)`` in ``count`` threads released together; return results by i."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def bank_credits(wallet):
    with wallet.db.sessions() as session:
        return session.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "topup_bank")
        )


def test_same_file_uploaded_by_eight_threads_at_once_credits_each_line_once(pg_app, pg_wallet, payer):
    token = create_token(pg_wallet.db, pg_wallet.clock, role="finance")
    code = payer.remittance_code
    data = csv_file(row(code, "10.00"), row(code, "10.00"), row(code.lower(), "30.00", tid="B7"))
    statuses = all_at_once(lambda i: upload(pg_app.test_client(), token, data).status_code)
    assert sorted(statuses) == [200] * (THREADS - 1) + [201]
    assert stored_counts(pg_wallet) == (1, 3)
    assert bank_credits(pg_wallet) == 3
    assert balances(pg_wallet, payer.id)[0] == 50_00
    assert_ledger_clean(pg_wallet)


def test_overlapping_statements_uploaded_at_once_credit_shared_lines_once(pg_app, pg_wallet, payer):
    token = create_token(pg_wallet.db, pg_wallet.clock, role="finance")
    code = payer.remittance_code
    shared = [row(code, "10.00", at="2026-11-20"), row(code, "20.00", at="2026-11-21")]
    files = [csv_file(*shared, row(code, f"{i + 1}.00", at="2026-11-22")) for i in range(THREADS)]
    statuses = all_at_once(lambda i: upload(pg_app.test_client(), token, files[i]).status_code)
    assert statuses == [201] * THREADS
    assert stored_counts(pg_wallet) == (THREADS, 2 + THREADS)
    assert bank_credits(pg_wallet) == 2 + THREADS
    assert balances(pg_wallet, payer.id)[0] == 30_00 + sum(range(1, THREADS + 1)) * 100
    assert_ledger_clean(pg_wallet)


def test_import_job_run_twice_at_once_imports_each_file_once(pg_wallet, payer):
    inbox = pg_wallet.settings.statement_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    for n in range(4):
        path = inbox / f"day-{n}.csv"
        path.write_bytes(csv_file(row(payer.remittance_code, f"{n + 1}.00", at=f"2026-11-2{n}")))
        os.utime(path, (time.time() - 60, time.time() - 60))
    all_at_once(lambda i: import_inbox(pg_wallet.db, pg_wallet.clock, inbox), count=2)
    assert stored_counts(pg_wallet) == (4, 4)
    assert balances(pg_wallet, payer.id)[0] == 10_00
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [f"day-{n}.csv" for n in range(4)]
    assert not any(p.is_file() for p in inbox.iterdir())
    assert_ledger_clean(pg_wallet)


def test_scheduled_job_started_on_two_hosts_runs_once(pg_wallet, payer):
    inbox = pg_wallet.settings.statement_inbox
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / "nov.csv"
    path.write_bytes(csv_file(row(payer.remittance_code, "9.00")))
    os.utime(path, (time.time() - 60, time.time() - 60))
    summaries = all_at_once(
        lambda i: run_job(pg_wallet, "statements-import", slot="tick-1", holder=f"host-{i}"), count=2
    )
    assert len([s for s in summaries if s is not None]) == 1
    assert balances(pg_wallet, payer.id)[0] == 9_00
