"""What anonymous posts to the notify URL can make the service store, and what is forgotten with time.

A verified notify is kept whole and forever; one that does not verify is kept for review with a
bounded part of its body, at most so many an hour, for a bounded number of days. Job runs and
failed coupon activations are forgotten after their retention; financial records never are.
"""
import io
import logging
import re
from datetime import timedelta

import responses
from sqlalchemy import func, insert, select

from app.adapters.alipay.notify import MAX_NOTIFY_BYTES
from app.adapters.db.models import ActivationFailure, AlipayNotification, JobRun
from app.jobs import run_job
from tests.conftest import bearer
from tests.integration.test_topups import (  # noqa: F401 - account, account_token: fixtures
    account,
    account_token,
    cash,
    create_topup,
    notifications,
    paid_notify,
    post_notify,
)

JUNK = b"notify_id=1&sign=x&out_trade_no=T1&pad=" + b"A" * (20 * 1024)


def paid_order_on(app):
    """An account, its token and a pending order on ``app``, with the sandbox answering Alipay's part."""
    from app.services.accounts import create_account
    from app.services.tokens import create_token
    from tests.conftest import _forward_to

    wallet = app.extensions["wallet"]
    created = create_account(wallet.db, wallet.clock, name="A", settlement="guance")
    token = create_token(wallet.db, wallet.clock, role="account", account_id=created.id)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback("POST", re.compile(r"http://wallet\.test/.*"), callback=_forward_to(app))
        order = create_topup(app.test_client(), {"id": created.id}, token)
    return {"id": created.id}, order


def post_junk(client, body=JUNK):
    response = client.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_data() != b"success"
    return response


def test_an_unverified_notify_is_kept_with_only_the_first_bytes_of_its_body(client, wallet):
    post_junk(client)
    [row] = notifications(wallet)
    assert (row.verified, row.outcome, row.needs_review) == (False, "rejected_signature", True)
    assert bytes(row.raw_body) == JUNK[: 8 * 1024]
    assert "only its first 8192 bytes are kept" in row.detail


def test_the_bytes_kept_of_an_unverified_notify_are_configurable_and_a_verified_one_is_kept_whole(make_app, db_url):
    app = make_app(db_url, NOTIFY_UNVERIFIED_BODY_BYTES="16")
    client, wallet = app.test_client(), app.extensions["wallet"]
    post_junk(client)
    _account, order = paid_order_on(app)
    params = paid_notify(wallet, wallet.extras["alipay_sandbox"], order)
    response = post_notify(client, params)
    assert response.get_data() == b"success"
    junk, credited = notifications(wallet)
    assert bytes(junk.raw_body) == JUNK[:16]
    assert credited.verified and credited.outcome == "credited" and len(credited.raw_body) > 500


def test_a_notify_body_larger_than_any_notify_is_never_read_whole(client, wallet):
    class CountingStream(io.RawIOBase):
        """A large body made up as it is read, counting what was read."""

        def __init__(self, size):
            self.size, self.position, self.read_bytes = size, 0, 0

        def readable(self):
            return True

        def seekable(self):
            return True

        def tell(self):
            return self.position

        def seek(self, offset, whence=io.SEEK_SET):
            self.position = offset if whence == io.SEEK_SET else self.size + offset
            return self.position

        def readinto(self, buffer):
            n = max(0, min(len(buffer), self.size - self.position))
            buffer[:n] = b"A" * n
            self.position += n
            self.read_bytes += n
            return n

    stream = CountingStream(8 * 1024 * 1024)
    response = client.post(
        "/alipay/notify",
        input_stream=stream,
        content_length=stream.size,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert stream.read_bytes <= MAX_NOTIFY_BYTES + 1
    [row] = notifications(wallet)
    assert row.outcome == "rejected_malformed" and len(row.raw_body) == 8 * 1024


def test_unverified_notifies_beyond_the_hourly_budget_are_counted_and_logged_not_stored(
    make_app, db_url, clock, caplog
):
    app = make_app(db_url, NOTIFY_UNVERIFIED_PER_HOUR="3")
    client, wallet = app.test_client(), app.extensions["wallet"]
    caplog.set_level(logging.WARNING, logger="app.services.unverified_notifies")
    for _ in range(3):
        post_junk(client)
        clock.advance(minutes=1)
    for _ in range(4):
        post_junk(client)
    assert len(notifications(wallet)) == 3
    assert "unverified notifies over the hourly budget are no longer stored" in caplog.messages

    # Alipay's own notifies are stored and credited whatever the budget.
    account, order = paid_order_on(app)
    assert post_notify(client, paid_notify(wallet, wallet.extras["alipay_sandbox"], order)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert [n.outcome for n in notifications(wallet)][-1] == "credited"

    # The oldest stored one turns an hour old: there is room for one more.
    clock.advance(minutes=57, seconds=30)
    post_junk(client)
    post_junk(client)
    assert [n.verified for n in notifications(wallet)] == [False, False, False, True, False]
    [resumed] = [r for r in caplog.records if r.getMessage().startswith("unverified notifies stored again")]
    assert resumed.not_stored == 4


def test_a_different_process_sees_the_spent_budget_in_the_database(make_app, db_url):
    from app.services import topups
    from app.services.unverified_notifies import UnverifiedNotifyBudget

    app = make_app(db_url, NOTIFY_UNVERIFIED_PER_HOUR="2")
    client, wallet = app.test_client(), app.extensions["wallet"]
    post_junk(client)
    post_junk(client)
    result = topups.handle_alipay_notify(
        wallet.db, wallet.clock, wallet.settings, raw_body=b"x", params=None, verified=False, charset="",
        decode_error="notify has no sign", budget=UnverifiedNotifyBudget(),
    )
    assert (result.acknowledge, result.outcome) == (False, "not_stored")
    assert len(notifications(wallet)) == 2


def _notification(received_at, *, verified, outcome, needs_review):
    return {
        "received_at": received_at,
        "raw_body": b"body",
        "charset": "utf-8",
        "verified": verified,
        "outcome": outcome,
        "detail": "",
        "needs_review": needs_review,
    }


def test_records_purge_forgets_old_unverified_notifies_and_keeps_every_verified_one(wallet, clock):
    now = clock.now()
    old = now - timedelta(days=91)
    rows = [
        _notification(old, verified=False, outcome="rejected_signature", needs_review=True),
        _notification(old, verified=False, outcome="rejected_malformed", needs_review=True),
        _notification(old, verified=True, outcome="credited", needs_review=False),
        _notification(old, verified=True, outcome="rejected_amount", needs_review=True),
        _notification(now - timedelta(days=89), verified=False, outcome="rejected_signature", needs_review=True),
    ]
    with wallet.db.engine.begin() as connection:
        connection.execute(insert(AlipayNotification), rows)
    assert run_job(wallet, "records-purge").startswith("forgot 2 unverified notify(s)")
    kept = notifications(wallet)
    assert [(n.verified, n.outcome) for n in kept] == [
        (True, "credited"), (True, "rejected_amount"), (False, "rejected_signature")
    ]
    clock.advance(seconds=1)
    assert run_job(wallet, "records-purge").startswith("forgot 0 unverified notify(s)")


def test_records_purge_forgets_old_unverified_notifies_in_batches(wallet, clock, monkeypatch):
    from app.services import unverified_notifies

    monkeypatch.setattr(unverified_notifies, "PURGE_BATCH", 2)
    old = clock.now() - timedelta(days=100)
    with wallet.db.engine.begin() as connection:
        connection.execute(
            insert(AlipayNotification),
            [_notification(old, verified=False, outcome="rejected_signature", needs_review=True)] * 5,
        )
    assert unverified_notifies.purge_unverified_notifies(wallet.db, wallet.clock, retention_days=90) == 5
    assert notifications(wallet) == []


def test_records_purge_retention_is_configurable(make_app, db_url, clock):
    app = make_app(db_url, NOTIFY_UNVERIFIED_RETENTION_DAYS="7", OPERATIONS_RETENTION_DAYS="2")
    wallet = app.extensions["wallet"]
    with wallet.db.engine.begin() as connection:
        connection.execute(
            insert(AlipayNotification),
            [_notification(clock.now() - timedelta(days=8), verified=False, outcome="rejected_signature",
                           needs_review=True)],
        )
        connection.execute(
            insert(JobRun),
            [{"job_name": "alipay-poll", "slot": "1", "holder": "h", "started_at": clock.now() - timedelta(days=3),
              "outcome": "ok", "detail": ""}],
        )
    assert run_job(wallet, "records-purge") == "forgot 1 unverified notify(s), 1 job run(s), 0 failed activation(s)"


def test_records_purge_forgets_old_job_runs_and_failed_activations_and_keeps_recent_ones(
    client, wallet, clock, account, account_token
):
    now = clock.now()
    for _ in range(2):
        response = client.post(
            f"/api/v1/accounts/{account['id']}/coupons/activate", json={"code": "WRONGCODE1"},
            headers=bearer(account_token),
        )
        assert response.status_code == 422
    with wallet.db.engine.begin() as connection:
        connection.execute(
            insert(JobRun),
            [
                {"job_name": "alipay-poll", "slot": str(i), "holder": "h", "started_at": now - timedelta(days=days),
                 "outcome": "ok", "detail": ""}
                for i, days in enumerate((91, 120, 89))
            ],
        )
    clock.advance(days=91)
    with wallet.db.engine.begin() as connection:
        token_id = connection.execute(select(ActivationFailure.token_id)).scalars().first()
        connection.execute(
            insert(ActivationFailure),
            [{"account_id": account["id"], "token_id": token_id, "reason": "code_unknown",
              "attempted_at": clock.now()}],
        )
    summary = run_job(wallet, "records-purge")
    assert summary == "forgot 0 unverified notify(s), 3 job run(s), 2 failed activation(s)"
    with wallet.db.sessions() as session:
        # The 89-day-old run is 180 days old now: gone with the others; this run is kept.
        assert session.scalar(select(func.count()).select_from(JobRun)) == 1
        assert session.scalar(select(func.count()).select_from(ActivationFailure)) == 1


def test_activation_failures_inside_the_guess_window_are_never_purged(client, wallet, clock, account, account_token):
    from app.services.coupons import purge_activation_failures

    client.post(f"/api/v1/accounts/{account['id']}/coupons/activate", json={"code": "WRONGCODE1"},
                headers=bearer(account_token))
    clock.advance(minutes=59)
    assert purge_activation_failures(wallet.db, wallet.clock, retention=timedelta(0)) == 0
    clock.advance(minutes=2)
    assert purge_activation_failures(wallet.db, wallet.clock, retention=timedelta(0)) == 1
