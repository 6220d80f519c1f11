"""Money movements when PostgreSQL fails under them, at every step in turn.

Each test arms a failure at the Nth statement (or COMMIT) the app sends, runs one operation,
checks that it either happened whole or not at all, then retries with the failure one step
later, until a run goes through. Whatever failed on the way, the operation has happened exactly
once at the end, the ledger verifies, and every failed run was answered with a clear error.

Failures: the backend terminated before the step (a server restart, a killed connection), the
step done and then the connection lost before its answer (so a COMMIT may have happened
unseen), a serialization failure instead of the step, or the server cancelling a statement
in its place (as a statement timeout does). Only this test database's own
connections are terminated. A run right after a killed connection must not fail for it: the
pool and the notify's per-thread connections drop a broken connection when it fails.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.adapters.alipay.sandbox.notify_builder import encode_form
from app.adapters.db.models import (
    ActivationFailure,
    Coupon,
    CouponCode,
    LedgerTransaction,
    PrepaidCard,
    StatementLine,
    TopupOrder,
)
from app.services import ledger
from app.services.coupons import issue_codes
from app.services.expiry import expire_credits
from app.services.topups import poll_pending_topups
from tests.conftest import bearer
from tests.integration.statement_helpers import csv_file, row, upload
from tests.integration.test_money_races import paid_notify
from tests.integration.wallet_helpers import NEXT_YEAR, add_workspace, give_card, give_coupon, top_up, wallet_of

pytestmark = pytest.mark.postgres

MODES = ("killed", "lost", "serialization", "timeout")


@pytest.fixture
def db_url(pg_url):
    return pg_url


# A statement the server cancels while it runs: what a statement timeout does.
CANCELLED = "SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(2)"


class Injector:
    """Counts the statements and COMMITs the app sends; fails the armed one."""

    def __init__(self, url: str):
        sa_url = make_url(url)
        self._conninfo = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._admin = psycopg.connect(self._conninfo, autocommit=True)
        self._local = threading.local()
        self.armed: tuple[int, str] | None = None
        self.count = 0
        self.fired = False

    def arm(self, step: int, mode: str) -> None:
        self.armed, self.count, self.fired = (step, mode), 0, False

    def disarm(self) -> None:
        self.armed = None

    def close(self) -> None:
        self._admin.close()

    def step(self, connection, run, cancel):
        """Run one step (``run()``) on ``connection``, failing it if it is the armed one.

        ``cancel()`` runs a statement that the server cancels, in the step's place.
        """
        if self.armed is None or getattr(self._local, "busy", False):
            return run()
        self.count += 1
        at, mode = self.armed
        if self.count != at:
            return run()
        self.fired = True
        if mode == "serialization":
            raise psycopg.errors.SerializationFailure("injected: could not serialize access")
        if mode == "timeout":
            return cancel()
        if mode == "killed":
            self._terminate(connection)
            return run()
        run()
        self._terminate(connection)
        connection.pgconn.finish()  # what the driver does when the connection ends instead of answering
        raise psycopg.OperationalError("injected: the connection was lost before its answer")

    def _terminate(self, connection) -> None:
        pid = connection.info.backend_pid
        self._local.busy = True
        try:
            self._admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(200):
                if not self._admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                    break
                time.sleep(0.005)
        finally:
            self._local.busy = False


@pytest.fixture
def inject(pg_url, monkeypatch):
    injector = Injector(pg_url)
    execute, executemany, commit = psycopg.Cursor.execute, psycopg.Cursor.executemany, psycopg.Connection.commit

    def cancelled(cursor):
        return lambda: execute(cursor, CANCELLED)

    def patched_execute(self, *args, **kwargs):
        return injector.step(self.connection, lambda: execute(self, *args, **kwargs), cancelled(self))

    def patched_executemany(self, *args, **kwargs):
        return injector.step(self.connection, lambda: executemany(self, *args, **kwargs), cancelled(self))

    def patched_commit(self):
        return injector.step(self, lambda: commit(self), cancelled(self.cursor()))

    monkeypatch.setattr(psycopg.Cursor, "execute", patched_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", patched_executemany)
    monkeypatch.setattr(psycopg.Connection, "commit", patched_commit)
    yield injector
    injector.disarm()
    injector.close()


def ledger_problems(wallet) -> list:
    with wallet.db.sessions() as session:
        return [*ledger.verify(session), *ledger.verify_references(session), *ledger.verify_consistency(session)]


def count(wallet, model, *where) -> int:
    with wallet.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def until_it_goes_through(wallet, inject, mode, attempt, *, failed_ok=None, limit=80):
    """Fail step 1, 2, 3... of ``attempt()`` in turn until a run meets no failure.

    After every run the ledger verifies (nothing half-done); ``failed_ok(result)`` says whether
    a failed run was answered as it should be. Returns the first step that was not failed
    and the result of that run.
    """
    for step in range(1, limit):
        inject.arm(step, mode)
        try:
            result = attempt()
        except Exception as exc:  # noqa: BLE001 - a service raising is an answer too
            result = exc
        finally:
            inject.disarm()
        assert ledger_problems(wallet) == [], (step, mode)
        if not inject.fired:
            return step, result
        if failed_ok is not None:
            assert failed_ok(result), (step, mode, result)
    raise AssertionError("the operation never went through")


def problem_5xx(response) -> bool:
    """Every injected failure is a passing one: a 503 problem that asks for the request again."""
    return (
        response.status_code == 503
        and response.mimetype == "application/problem+json"
        and response.get_json()["code"] == "database_unavailable"
        and response.headers.get("Retry-After") == "1"
    )


# -- bills ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_bill_failing_at_any_step_settles_once_when_retried(mode, client, admin_token, new_account, wallet, inject):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    give_coupon(client, admin_token, account["id"], "3.00")
    top_up(wallet, account["id"], 10_00, "seed")
    def attempt():
        return client.post("/api/v1/bills", json={"bill_id": "b-1", "workspace_id": "ws-1", "product": "general",
                                                  "amount": "5.00"}, headers=bearer(admin_token))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code in (200, 201))
    assert last.status_code in (200, 201), last.get_data(as_text=True)
    assert count(wallet, LedgerTransaction, LedgerTransaction.idempotency_key == "bill:b-1") == 1
    figures = wallet_of(client, admin_token, account["id"])
    assert (figures["cash"], figures["coupons"]["regular"]) == ("8.00", "0.00")


# -- Alipay top-ups ---------------------------------------------------------------------------


@pytest.fixture
def payer(new_account, token_for):
    account = new_account("Payer")
    account["token"] = token_for("account", account["id"])
    return account


def paid_order(client, wallet, sandbox, account, amount="100.00"):
    """An order created over the API and paid at the sandbox's Alipay, its notify not sent."""
    response = client.post(f"/api/v1/accounts/{account['id']}/topups", json={"amount": amount, "method": "alipay"},
                           headers=bearer(account["token"]))
    assert response.status_code == 201, response.get_data(as_text=True)
    order = response.get_json()
    assert sandbox.pay(urlsplit(order["qr_code"]).path.rstrip("/").rsplit("/", 1)[-1], charset="utf-8")[1]
    return order


def order_status(wallet, out_trade_no) -> str:
    with wallet.db.sessions() as session:
        return session.get(TopupOrder, out_trade_no).status


def credited_once(wallet, out_trade_no) -> bool:
    return count(wallet, LedgerTransaction, LedgerTransaction.idempotency_key == f"alipay:{out_trade_no}") == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("owing", [False, True], ids=["one-statement", "general"])
def test_a_notify_failing_at_any_step_is_not_acknowledged_and_its_resend_credits_once(
        mode, owing, client, admin_token, wallet, sandbox, alipay_http, payer, inject):
    if owing:  # arrears send the notify down the general path
        add_workspace(client, admin_token, payer["id"], "ws-owing")
        assert client.post("/api/v1/bills", json={"bill_id": "debt", "workspace_id": "ws-owing", "product": "sms",
                                                  "amount": "30.00"}, headers=bearer(admin_token)).status_code == 201
    order = paid_order(client, wallet, sandbox, payer)
    body = encode_form(paid_notify(wallet, sandbox, order))

    def attempt():
        return client.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")

    def failed_ok(response):
        if response.get_data() == b"success":
            return False
        # Not acknowledged: either nothing happened, or the credit committed and its answer was lost.
        return order_status(wallet, order["out_trade_no"]) == "pending" or mode == "lost"

    _, last = until_it_goes_through(wallet, inject, mode, attempt, failed_ok=failed_ok)
    assert last.get_data() == b"success"
    assert order_status(wallet, order["out_trade_no"]) == "paid" and credited_once(wallet, order["out_trade_no"])
    figures = wallet_of(client, admin_token, payer["id"])
    assert (figures["cash"], figures["arrears"]) == (("70.00", "0.00") if owing else ("100.00", "0.00"))


@pytest.mark.parametrize("mode", MODES)
def test_a_status_read_failing_at_any_step_credits_once_when_read_again(
        mode, client, admin_token, wallet, sandbox, alipay_http, payer, inject):
    order = paid_order(client, wallet, sandbox, payer)

    def attempt():
        wallet.clock.advance(seconds=wallet.settings.topup_query_min_interval_seconds)
        return client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(payer["token"]))

    def failed_ok(response):
        return problem_5xx(response) or (response.status_code == 200
                                         and response.get_json()["status"] == order_status(wallet, order["out_trade_no"]))

    _, last = until_it_goes_through(wallet, inject, mode, attempt, failed_ok=failed_ok)
    assert last.status_code == 200 and last.get_json()["status"] == "paid"
    assert credited_once(wallet, order["out_trade_no"])
    assert wallet_of(client, admin_token, payer["id"])["cash"] == "100.00"


@pytest.mark.parametrize("mode", MODES)
def test_the_poll_job_failing_at_any_step_credits_once_when_run_again(
        mode, client, admin_token, wallet, sandbox, alipay_http, payer, inject):
    orders = [paid_order(client, wallet, sandbox, payer, amount) for amount in ("10.00", "20.00")]
    wallet.clock.advance(minutes=2)

    def attempt():
        wallet.clock.advance(minutes=1)
        return poll_pending_topups(wallet.db, wallet.clock, wallet.gateway)

    until_it_goes_through(wallet, inject, mode, attempt)
    while any(order_status(wallet, o["out_trade_no"]) == "pending" for o in orders):
        wallet.clock.advance(minutes=1)
        poll_pending_topups(wallet.db, wallet.clock, wallet.gateway)
    assert all(credited_once(wallet, o["out_trade_no"]) for o in orders)
    assert wallet_of(client, admin_token, payer["id"])["cash"] == "30.00"


@pytest.mark.parametrize("mode", MODES)
def test_a_topup_creation_failing_at_any_step_moves_no_money_and_answers_clearly(
        mode, client, admin_token, wallet, sandbox, alipay_http, payer, inject):
    def attempt():
        return client.post(f"/api/v1/accounts/{payer['id']}/topups", json={"amount": "10.00", "method": "alipay"},
                           headers=bearer(payer["token"]))

    _, last = until_it_goes_through(wallet, inject, mode, attempt, failed_ok=problem_5xx)
    assert last.status_code == 201
    with wallet.db.sessions() as session:
        assert {o.status for o in session.execute(select(TopupOrder)).scalars()} == {"pending"}
    assert count(wallet, LedgerTransaction) == 0


# -- coupons and prepaid cards ----------------------------------------------------------------


def retried_once_abandoned(wallet, send):
    """Send; a key left in progress by a lost answer is retried once it counts as abandoned."""
    response = send()
    if response.status_code == 409 and response.get_json()["code"] == "idempotency_in_progress":
        wallet.clock.advance(minutes=6)
        response = send()
    return response


@pytest.mark.parametrize("mode", MODES)
def test_a_coupon_activation_failing_at_any_step_grants_once(mode, client, wallet, payer, inject):
    [code] = issue_codes(wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, count=1,
                         face_value_fen=20_00, valid_from=None, expires_at=wallet.clock.now() + timedelta(days=30),
                         actor="admin")

    def attempt():
        return client.post(f"/api/v1/accounts/{payer['id']}/coupons/activate", json={"code": code},
                           headers=bearer(payer["token"]))

    _, last = until_it_goes_through(wallet, inject, mode, attempt, failed_ok=problem_5xx)
    # A lost answer's retry finds the code redeemed by this account, its coupon in the wallet.
    assert last.status_code == 201 or last.get_json()["code"] == "activation_code_used", last.get_json()
    assert count(wallet, Coupon) == 1
    assert count(wallet, ActivationFailure) == 0
    assert wallet_of(client, payer["token"], payer["id"])["coupons"]["regular"] == "20.00"


@pytest.mark.parametrize("mode", MODES)
def test_a_keyed_card_purchase_failing_at_any_step_buys_one_card(mode, client, wallet, payer, inject):
    top_up(wallet, payer["id"], 300_00, "seed")
    headers = dict(bearer(payer["token"]), **{"Idempotency-Key": "buy-1"})

    def attempt():
        return retried_once_abandoned(wallet, lambda: client.post(
            f"/api/v1/accounts/{payer['id']}/prepaid-cards", json={"amount": "200.00"}, headers=headers))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code == 201)
    assert last.status_code == 201, last.get_data(as_text=True)
    assert count(wallet, PrepaidCard) == 1
    figures = wallet_of(client, payer["token"], payer["id"])
    assert (figures["cash"], figures["prepaid_cards"], figures["invoiceable"]) == ("100.00", "200.00", "200.00")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("grant", ["coupon", "card"])
def test_a_keyed_grant_failing_at_any_step_gives_once(mode, grant, client, admin_token, wallet, payer, inject):
    path, model, figure = {"coupon": ("/api/v1/coupons", Coupon, lambda f: f["coupons"]["regular"]),
                           "card": ("/api/v1/prepaid-cards", PrepaidCard, lambda f: f["prepaid_cards"])}[grant]
    body = {"account_id": payer["id"], "amount": "50.00", "expires_at": NEXT_YEAR}
    if grant == "coupon":
        body["kind"] = "regular"
    headers = dict(bearer(admin_token), **{"Idempotency-Key": f"grant-{grant}"})

    def attempt():
        return retried_once_abandoned(wallet, lambda: client.post(path, json=body, headers=headers))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code == 201)
    assert last.status_code == 201, last.get_data(as_text=True)
    assert count(wallet, model) == 1
    assert figure(wallet_of(client, admin_token, payer["id"])) == "50.00"


@pytest.mark.parametrize("mode", MODES)
def test_keyed_activation_codes_failing_at_any_step_are_shown_when_retried(mode, client, admin_token, wallet, inject):
    body = {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "count": 2}
    headers = dict(bearer(admin_token), **{"Idempotency-Key": "codes-1"})

    def attempt():
        return retried_once_abandoned(wallet, lambda: client.post("/api/v1/coupons", json=body, headers=headers))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code == 201)
    assert last.status_code == 201, last.get_data(as_text=True)
    codes = last.get_json()["codes"]
    assert len(codes) == 2 and count(wallet, CouponCode) == 2
    assert client.post("/api/v1/coupons", json=body, headers=headers).get_json()["codes"] == codes


# -- bank statements --------------------------------------------------------------------------


@pytest.fixture
def finance(token_for):
    return token_for("finance")


def line_credits(wallet) -> int:
    return count(wallet, LedgerTransaction, LedgerTransaction.kind == "topup_bank")


@pytest.mark.parametrize("mode", MODES)
def test_a_statement_upload_failing_at_any_step_imports_and_credits_once(mode, client, admin_token, wallet, payer,
                                                                         finance, inject):
    data = csv_file(row(f"pay {payer['remittance_code']}", "60.00", tid="t1"), row("no code", "7.00", tid="t2"))

    _, last = until_it_goes_through(wallet, inject, mode, lambda: upload(client, finance, data),
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code in (200, 201))
    assert last.status_code in (200, 201), last.get_data(as_text=True)
    assert count(wallet, StatementLine) == 2 and line_credits(wallet) == 1
    assert wallet_of(client, admin_token, payer["id"])["cash"] == "60.00"


@pytest.fixture
def waiting_line(client, wallet, finance):
    assert upload(client, finance, csv_file(row("no code", "40.00", tid="t9"))).status_code == 201
    with wallet.db.sessions() as session:
        return session.scalar(select(StatementLine.id))


@pytest.mark.parametrize("mode", MODES)
def test_a_match_failing_at_any_step_credits_the_line_once(mode, client, admin_token, wallet, payer, finance,
                                                           waiting_line, inject):
    def attempt():
        return client.post(f"/api/v1/statement-lines/{waiting_line}/match",
                           json={"account_id": payer["id"], "reason": "phoned"}, headers=bearer(finance))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code == 200)
    assert last.status_code == 200 or last.get_json()["code"] == "line_already_matched"
    assert line_credits(wallet) == 1
    assert wallet_of(client, admin_token, payer["id"])["cash"] == "40.00"


@pytest.mark.parametrize("mode", MODES)
def test_an_unmatch_failing_at_any_step_reverses_the_line_once(mode, client, admin_token, wallet, payer, finance,
                                                               waiting_line, inject):
    assert client.post(f"/api/v1/statement-lines/{waiting_line}/match",
                       json={"account_id": payer["id"], "reason": "phoned"}, headers=bearer(finance)).status_code == 200

    def attempt():
        return client.post(f"/api/v1/statement-lines/{waiting_line}/unmatch", json={"reason": "wrong payer"},
                           headers=bearer(finance))

    _, last = until_it_goes_through(wallet, inject, mode, attempt,
                                    failed_ok=lambda r: problem_5xx(r) or r.status_code == 200)
    assert last.status_code == 200 or last.get_json()["code"] == "line_not_matched"
    assert count(wallet, LedgerTransaction, LedgerTransaction.kind == "topup_bank_reversal") == 1
    assert wallet_of(client, admin_token, payer["id"])["cash"] == "0.00"


# -- credits expiry ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_expiry_job_failing_at_any_step_forfeits_once_when_run_again(mode, client, admin_token, wallet, payer,
                                                                         inject):
    soon = (wallet.clock.now() + timedelta(days=1)).isoformat()
    give_coupon(client, admin_token, payer["id"], "8.00", expires_at=soon)
    give_card(client, admin_token, payer["id"], "9.00", expires_at=soon)
    wallet.clock.advance(days=2)

    until_it_goes_through(wallet, inject, mode, lambda: expire_credits(wallet.db, wallet.clock))
    expire_credits(wallet.db, wallet.clock)
    assert count(wallet, LedgerTransaction, LedgerTransaction.kind == "expiry") == 2
    figures = wallet_of(client, admin_token, payer["id"])
    assert (figures["coupons"]["regular"], figures["prepaid_cards"]) == ("0.00", "0.00")
