"""Every server backend of the service's database terminated at once (an administrator, a
failover, a connection pooler restarting), between two requests or in the middle of one.

Unlike the failure injection tests, which fail one statement on one connection, these end all
of the database's connections together: the pool's idle ones, the one a request is using and
each thread's own autocommit connection. A request that meets a dead connection may fail (a
503 asking for it again, or a notify left unacknowledged); sending it again must go through.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from app.adapters.alipay.sandbox.notify_builder import encode_form
from app.adapters.db.models import IdempotentRequest, JobLock, JobRun, LedgerTransaction
from app.services import bills, idempotency, ledger
from tests.conftest import bearer
from tests.integration.test_failure_injection import (  # noqa: F401 - payer: a fixture
    credited_once,
    order_status,
    paid_order,
    payer,
)
from tests.integration.test_money_races import paid_notify
from tests.integration.wallet_helpers import add_workspace, top_up, wallet_of

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(pg_url):
    return pg_url


def terminate_every_backend(pg_url: str) -> int:
    """Terminate every other connection to the test database; return once they are gone."""
    url = make_url(pg_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        pids = [
            row[0]
            for row in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]).fetchone():
            assert time.monotonic() < deadline, "the backends did not end"
            time.sleep(0.005)
    return len(pids)


def fill_pool(wallet, connections: int = 4) -> None:
    """Leave ``connections`` idle connections in the pool, as a busy worker's pool holds."""
    held = [wallet.db.engine.connect() for _ in range(connections)]
    for connection in held:
        connection.exec_driver_sql("SELECT 1")
    for connection in held:
        connection.close()


def ledger_problems(wallet) -> list:
    with wallet.db.sessions() as session:
        return [*ledger.verify(session), *ledger.verify_references(session), *ledger.verify_consistency(session)]


def database_unavailable(response) -> bool:
    return (
        response.status_code == 503
        and response.mimetype == "application/problem+json"
        and response.get_json()["code"] == "database_unavailable"
    )


def test_a_keyed_bill_whose_connections_all_die_mid_request_goes_through_when_sent_again(
        client, admin_token, new_account, wallet, pg_url, monkeypatch):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    top_up(wallet, account["id"], 10_00, "seed")
    fill_pool(wallet)
    claim = idempotency.begin

    def claimed_then_every_backend_terminated(*args, **kwargs):
        stored = claim(*args, **kwargs)
        assert terminate_every_backend(pg_url) >= 4
        return stored

    monkeypatch.setattr(idempotency, "begin", claimed_then_every_backend_terminated)
    bill = {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general", "amount": "5.00"}
    headers = {**bearer(admin_token), "Idempotency-Key": "bill-b-1"}
    first = client.post("/api/v1/bills", json=bill, headers=headers)
    monkeypatch.setattr(idempotency, "begin", claim)

    assert database_unavailable(first), first.get_data(as_text=True)
    # The failed request released its key: the same request again settles the bill, once.
    again = client.post("/api/v1/bills", json=bill, headers=headers)
    assert again.status_code == 201, again.get_data(as_text=True)
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(IdempotentRequest)) == 1
        assert session.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.idempotency_key == "bill:b-1")
        ) == 1
    assert wallet_of(client, admin_token, account["id"])["cash"] == "5.00"
    assert ledger_problems(wallet) == []


# -- Alipay notifies ---------------------------------------------------------------------------


def notify_for(client, wallet, sandbox, payer, amount="100.00"):
    """Send ``notify()`` for an order paid at the sandbox: its notify, posted here."""
    order = paid_order(client, wallet, sandbox, payer, amount)
    body = encode_form(paid_notify(wallet, sandbox, order))

    def notify():
        return client.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")

    return order["out_trade_no"], notify


@pytest.fixture
def in_another_thread():
    """Run calls on one other thread that lives through the test (a worker's other thread);
    each returns what its call returned."""
    with ThreadPoolExecutor(max_workers=1) as other:
        yield lambda call: other.submit(call).result(timeout=30)


def test_a_notify_on_a_terminated_credit_connection_is_not_acknowledged_and_its_resend_credits_once(
        client, wallet, sandbox, alipay_http, payer, pg_url):
    first, notify_first = notify_for(client, wallet, sandbox, payer)
    second, notify_second = notify_for(client, wallet, sandbox, payer, "50.00")
    assert notify_first().get_data() == b"success"  # this thread's credit connection is open now
    assert terminate_every_backend(pg_url) >= 1

    failed = notify_second()
    assert (failed.status_code, failed.get_data()) == (503, b"failure")
    assert order_status(wallet, second) == "pending"
    resent = notify_second()
    assert (resent.status_code, resent.get_data()) == (200, b"success")
    assert credited_once(wallet, first) and credited_once(wallet, second)
    assert wallet_of(client, payer["token"], payer["id"])["cash"] == "150.00"
    assert ledger_problems(wallet) == []


def test_once_one_request_meets_a_terminated_backend_the_others_get_live_connections(
        client, wallet, sandbox, alipay_http, payer, pg_url, in_another_thread):
    orders = [notify_for(client, wallet, sandbox, payer, "10.00") for _ in range(4)]
    # Two threads with their own credit connection, and idle connections in the pool.
    assert orders[0][1]().get_data() == b"success"
    assert in_another_thread(orders[1][1]).get_data() == b"success"
    fill_pool(wallet)
    assert terminate_every_backend(pg_url) >= 6

    # The first request to meet a dead connection fails; the rest are pinged before their use
    # and replaced, instead of failing one request each.
    assert orders[2][1]().get_data() == b"failure"
    account = client.get(f"/api/v1/accounts/{payer['id']}", headers=bearer(payer["token"]))
    assert account.status_code == 200, account.get_data(as_text=True)
    other_thread = in_another_thread(orders[3][1])
    assert (other_thread.status_code, other_thread.get_data()) == (200, b"success")
    assert orders[2][1]().get_data() == b"success"
    assert all(credited_once(wallet, out_trade_no) for out_trade_no, _ in orders)
    assert ledger_problems(wallet) == []


def test_a_key_whose_release_meets_a_backend_ended_after_its_ping_is_released_all_the_same(
        client, admin_token, new_account, wallet, pg_url, monkeypatch):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    top_up(wallet, account["id"], 10_00, "seed")
    ended = []

    def backend_ended_after_the_ping(dbapi_connection, _record, _proxy):
        # The connection handed out to release the key passed its ping, then its backend ended
        # (a server's backends end a moment apart, not all at the same instant).
        if not ended:
            ended.append(dbapi_connection.info.backend_pid)
            conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [ended[0]])

    def connection_lost(*_args, **_kwargs):
        event.listen(wallet.db.engine, "checkout", backend_ended_after_the_ping)
        raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")

    monkeypatch.setattr(bills, "settle_bill", connection_lost)
    bill = {"bill_id": "b-1", "workspace_id": "ws-1", "product": "general", "amount": "5.00"}
    headers = {**bearer(admin_token), "Idempotency-Key": "bill-b-1"}
    first = client.post("/api/v1/bills", json=bill, headers=headers)
    event.remove(wallet.db.engine, "checkout", backend_ended_after_the_ping)
    monkeypatch.undo()

    assert ended, "no connection was handed out after the bill failed"
    assert database_unavailable(first), first.get_data(as_text=True)
    # The key was released on another connection: the same request again settles the bill.
    again = client.post("/api/v1/bills", json=bill, headers=headers)
    assert again.status_code == 201, again.get_data(as_text=True)
    assert wallet_of(client, admin_token, account["id"])["cash"] == "5.00"
    assert ledger_problems(wallet) == []


# -- scheduled jobs ----------------------------------------------------------------------------


def test_a_job_whose_backends_are_terminated_mid_run_is_recorded_failed_and_its_lease_released(
        wallet, pg_url):
    from app.jobs import JOBS, Job, register_job, run_job

    def ends_every_backend_then_reads(w):
        with w.db.sessions() as session:
            session.execute(select(func.count()).select_from(LedgerTransaction)).scalar_one()
            fill_pool(w)
            terminate_every_backend(pg_url)
            session.execute(select(func.count()).select_from(LedgerTransaction)).scalar_one()
        return "read twice"

    register_job(Job("terminated-test", 60, ends_every_backend_then_reads, "test job"))
    try:
        with pytest.raises(Exception) as failed:
            run_job(wallet, "terminated-test", slot="s1", holder="host-a:1")
        assert "terminating connection" in str(failed.value)
        with wallet.db.sessions() as session:
            runs = session.execute(select(JobRun.slot, JobRun.outcome, JobRun.finished_at.is_not(None))).all()
            assert runs == [("s1", "failed", True)]
            assert session.scalar(select(func.count()).select_from(JobLock)) == 0
        # The next tick runs it at once, on live connections.
        register_job(Job("terminated-test", 60, lambda w: "ran", "test job"))
        assert run_job(wallet, "terminated-test", slot="s2", holder="host-b:2") == "ran"
    finally:
        JOBS.pop("terminated-test")
