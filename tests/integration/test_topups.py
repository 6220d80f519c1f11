"""Alipay QR top-ups end to end through the sandbox: create, scan, pay, notify, return, query."""
import re
import threading
from urllib.parse import urlsplit

import pytest
import requests
import responses
from sqlalchemy import select

from app.adapters.alipay.keys import load_app_private_key
from app.adapters.alipay.sandbox.notify_builder import build_signed_notify, encode_form
from app.adapters.db.models import Account, AlipayNotification, TopupOrder
from app.services import ledger
from tests.conftest import bearer


@pytest.fixture
def account(new_account):
    return new_account("Payer")


@pytest.fixture
def account_token(token_for, account):
    return token_for("account", account["id"])


def create_topup(client, account, token, amount="100.00"):
    response = client.post(
        f"/api/v1/accounts/{account['id']}/topups",
        json={"amount": amount, "method": "alipay"},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def scan_and_pay(client, qr_code, charset="utf-8"):
    path = urlsplit(qr_code).path
    assert client.get(path).status_code == 200  # "scan": opens the payer page
    return client.post(path + "/pay", data={"charset": charset})


def cash(wallet, account_id):
    with wallet.db.sessions() as session:
        return session.get(Account, account_id).cash_fen


def notifications(wallet):
    with wallet.db.sessions() as session:
        return session.execute(select(AlipayNotification).order_by(AlipayNotification.id)).scalars().all()


def paid_notify(wallet, sandbox, order, *, key=None, **changes):
    """A complete TRADE_SUCCESS notify for ``order``, signed by the sandbox's Alipay key."""
    fields = {
        "notify_time": "2026-11-26 12:05:00",
        "notify_type": "trade_status_sync",
        "notify_id": "n" + order["out_trade_no"],
        "app_id": wallet.settings.alipay_app_id,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026112622001400001",
        "out_trade_no": order["out_trade_no"],
        "buyer_id": "2088102177846880",
        "seller_id": sandbox.seller_id,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": order["amount"],
        "receipt_amount": order["amount"],
        "subject": "Wallet top-up",
        "gmt_payment": "2026-11-26 12:04:59",
        "fund_bill_list": '[{"amount":"%s","fundChannel":"ALIPAYACCOUNT"}]' % order["amount"],
    }
    fields.update(changes)
    return build_signed_notify(key or sandbox.alipay_private_key, **fields)


def post_notify(client, params, charset="utf-8"):
    return client.post(
        "/alipay/notify",
        data=encode_form(params, charset),
        content_type="application/x-www-form-urlencoded; charset=" + charset,
    )


def test_topup_creates_a_pending_order_with_the_sandbox_qr_code(client, account, account_token, alipay_http):
    order = create_topup(client, account, account_token, "88.80")
    assert order["status"] == "pending" and order["amount"] == "88.80"
    assert order["qr_code"].startswith("http://wallet.test/_sandbox/alipay/qr/")
    assert order["checkout_url"] == f"http://wallet.test/checkout/{order['out_trade_no']}"
    assert order["expires_at"].endswith("+00:00")


def test_paying_in_the_sandbox_credits_once_and_returns_to_our_result_page(
    client, wallet, account, account_token, alipay_http, sandbox
):
    order = create_topup(client, account, account_token)
    paid = scan_and_pay(client, order["qr_code"])
    assert paid.status_code == 302
    returned = client.get(urlsplit(paid.headers["Location"]).path + "?" + urlsplit(paid.headers["Location"]).query)
    assert returned.status_code == 302
    assert returned.headers["Location"] == f"/checkout/{order['out_trade_no']}/result"
    assert cash(wallet, account["id"]) == 10000
    [attempt] = sandbox.notify_attempts(order["out_trade_no"])
    assert attempt.acknowledged
    status = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token)).get_json()
    assert status["status"] == "paid" and status["paid_at"]
    page = client.get(returned.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="topup-status">paid<' in page


def test_duplicate_notify_is_acknowledged_and_credits_nothing_more(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    params = paid_notify(wallet, sandbox, order)
    assert post_notify(client, params).get_data() == b"success"
    assert post_notify(client, params).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert [n.outcome for n in notifications(wallet)] == ["credited", "duplicate"]


def test_fifty_concurrent_duplicate_notifies_credit_once(app, wallet, account, account_token, alipay_http, sandbox, db_url):
    client = app.test_client()
    order = create_topup(client, account, account_token)
    body = encode_form(paid_notify(wallet, sandbox, order))
    barrier = threading.Barrier(50)
    answers = []

    def send():
        own = app.test_client()
        barrier.wait()
        response = own.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")
        answers.append(response.get_data())

    threads = [threading.Thread(target=send) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cash(wallet, account["id"]) == 10000
    outcomes = [n.outcome for n in notifications(wallet)]
    assert outcomes.count("credited") == 1
    if db_url.startswith("postgresql"):
        # Row locks queue the duplicates behind the credit: every one of them gets success.
        assert answers == [b"success"] * 50
    else:
        assert answers.count(b"success") >= 1
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == []
        assert ledger.verify_references(session) == []


def test_notify_signed_with_the_merchants_own_key_is_refused(client, wallet, account, account_token, alipay_http, sandbox, dev_keys):
    order = create_topup(client, account, account_token)
    merchant_key = load_app_private_key(dev_keys["app_private"])
    response = post_notify(client, paid_notify(wallet, sandbox, order, key=merchant_key))
    assert response.status_code == 400 and response.get_data() != b"success"
    assert cash(wallet, account["id"]) == 0
    [row] = notifications(wallet)
    assert (row.verified, row.outcome, row.needs_review) == (False, "rejected_signature", True)


def test_an_oversized_notify_body_is_recorded_for_review_without_storing_megabytes(client, wallet):
    # No notify from Alipay comes near this size; anyone can post to this URL, and what is
    # stored for review must not let them fill the database megabytes at a time.
    from app.adapters.alipay.notify import MAX_NOTIFY_BYTES

    body = b"notify_id=1&sign=x&out_trade_no=" + b"A" * (MAX_NOTIFY_BYTES * 16)
    response = client.post("/alipay/notify", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.get_data() != b"success"
    [row] = notifications(wallet)
    assert row.outcome == "rejected_malformed" and row.needs_review
    assert bytes(row.raw_body) == body[: wallet.settings.notify_unverified_body_bytes]
    assert wallet.settings.notify_unverified_body_bytes < MAX_NOTIFY_BYTES


def test_notify_signed_with_another_key_is_refused(client, wallet, account, account_token, alipay_http, sandbox):
    from app.adapters.alipay.keys import generate_keypair

    order = create_topup(client, account, account_token)
    other = load_app_private_key(generate_keypair()[0])
    assert post_notify(client, paid_notify(wallet, sandbox, order, key=other)).get_data() != b"success"
    assert cash(wallet, account["id"]) == 0


def test_tampered_amount_after_signing_is_refused(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    params = paid_notify(wallet, sandbox, order)
    params["total_amount"] = "1000.00"
    assert post_notify(client, params).get_data() != b"success"
    assert cash(wallet, account["id"]) == 0


@pytest.mark.parametrize(
    "changes, outcome",
    [
        ({"total_amount": "99.99"}, "rejected_amount"),
        ({"app_id": "2099000000000000"}, "rejected_app_id"),
        ({"out_trade_no": "T20261126UNKNOWN"}, "rejected_unknown_order"),
    ],
)
def test_signed_notify_failing_a_check_is_recorded_and_not_acknowledged(
    client, wallet, account, account_token, alipay_http, sandbox, changes, outcome
):
    order = create_topup(client, account, account_token)
    response = post_notify(client, paid_notify(wallet, sandbox, order, **changes))
    assert response.get_data() != b"success"
    assert cash(wallet, account["id"]) == 0
    [row] = notifications(wallet)
    assert row.verified and row.outcome == outcome and row.needs_review


def test_notify_for_another_seller_is_refused(make_app, sqlite_url, dev_keys):
    app = make_app(sqlite_url, ALIPAY_SELLER_ID="2088000000000001")
    wallet = app.extensions["wallet"]
    sandbox = wallet.extras["alipay_sandbox"]
    client = app.test_client()
    from app.services.accounts import create_account
    from app.services.tokens import create_token

    account = create_account(wallet.db, wallet.clock, name="A", settlement="guance")
    token = create_token(wallet.db, wallet.clock, role="account", account_id=account.id)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        from tests.conftest import _forward_to

        mock.add_callback("POST", re.compile(r"http://wallet\.test/.*"), callback=_forward_to(app))
        order = create_topup(client, {"id": account.id}, token)
    wrong = paid_notify(wallet, sandbox, order, seller_id="2088999999999999")
    assert post_notify(client, wrong).get_data() != b"success"
    right = paid_notify(wallet, sandbox, order, seller_id="2088000000000001")
    assert post_notify(client, right).get_data() == b"success"
    assert cash(wallet, account.id) == 10000


def test_gbk_notify_with_chinese_text_verifies_and_credits(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    params = paid_notify(wallet, sandbox, order, charset="gbk", subject="钱包充值", body="观测云账户充值")
    raw = encode_form(params, "gbk")
    assert "钱包".encode("gbk") in bytes(__import__("urllib.parse").parse.unquote_to_bytes(raw))
    assert post_notify(client, params, "gbk").get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert notifications(wallet)[0].charset == "gbk"


def test_gbk_payment_through_the_sandbox_credits(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    scan_and_pay(client, order["qr_code"], charset="gbk")
    assert cash(wallet, account["id"]) == 10000


@pytest.mark.parametrize(
    "refund",
    [
        {"refund_fee": "100.00", "gmt_refund": "2026-11-26 13:00:00.123", "out_biz_no": "R1"},
        {"trade_status": "TRADE_CLOSED", "refund_fee": "100.00", "gmt_refund": "2026-11-26 13:00:00.123"},
    ],
)
def test_refund_notify_never_credits_and_is_recorded_for_finance(
    client, wallet, account, account_token, alipay_http, sandbox, refund
):
    order = create_topup(client, account, account_token)
    assert post_notify(client, paid_notify(wallet, sandbox, order, **refund)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 0
    [row] = notifications(wallet)
    assert row.outcome == "refund_recorded" and row.needs_review


def test_refund_after_payment_does_not_debit_the_wallet(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    post_notify(client, paid_notify(wallet, sandbox, order))
    post_notify(client, paid_notify(wallet, sandbox, order, refund_fee="40.00", out_biz_no="R1", notify_id="n2"))
    assert cash(wallet, account["id"]) == 10000


@pytest.mark.parametrize(
    "changes",
    [
        # A discount: the buyer paid less than total_amount; the order's amount is total_amount.
        {"receipt_amount": "90.00", "buyer_pay_amount": "85.00", "point_amount": "5.00", "invoice_amount": "85.00",
         "voucher_detail_list": '[{"amount":"10.00","merchantContribute":"0.00","otherContribute":"10.00"}]'},
        # Payment notifies may carry a zero refund_fee: not a refund.
        {"refund_fee": "0.00"},
        {"trade_status": "TRADE_FINISHED"},
    ],
)
def test_paid_notify_credits_the_orders_total_amount_whatever_else_it_carries(
    client, wallet, account, account_token, alipay_http, sandbox, changes
):
    order = create_topup(client, account, account_token)
    assert post_notify(client, paid_notify(wallet, sandbox, order, **changes)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert [n.outcome for n in notifications(wallet)] == ["credited"]


def test_trade_finished_after_trade_success_is_acknowledged_and_credits_nothing_more(
    client, wallet, account, account_token, alipay_http, sandbox
):
    # TRADE_FINISHED comes when the refund window has passed, with a notify_id of its own.
    order = create_topup(client, account, account_token)
    assert post_notify(client, paid_notify(wallet, sandbox, order)).get_data() == b"success"
    finished = paid_notify(wallet, sandbox, order, trade_status="TRADE_FINISHED", notify_id="n-finished",
                           notify_time="2027-02-26 12:05:00")
    assert post_notify(client, finished).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert [n.outcome for n in notifications(wallet)] == ["credited", "duplicate"]


@pytest.mark.parametrize("gmt_payment", ["0001-01-01 07:59:59", "not a time"])
def test_paid_notify_with_a_payment_time_outside_utc_credits_and_says_when_it_arrived(
    client, wallet, account, account_token, alipay_http, sandbox, gmt_payment
):
    order = create_topup(client, account, account_token)
    assert post_notify(client, paid_notify(wallet, sandbox, order, gmt_payment=gmt_payment)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    status = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token))
    assert status.status_code == 200, status.get_data(as_text=True)
    assert status.get_json()["paid_at"] == wallet.clock.now().isoformat()


def test_paid_notify_for_a_locally_closed_order_still_credits(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    with wallet.db.transaction() as session:
        session.get(TopupOrder, order["out_trade_no"]).status = "closed"
    assert post_notify(client, paid_notify(wallet, sandbox, order)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000


def test_topup_pays_off_arrears_first(client, wallet, account, account_token, alipay_http, sandbox):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill:x", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 3000)])
    order = create_topup(client, account, account_token)
    post_notify(client, paid_notify(wallet, sandbox, order))
    with wallet.db.sessions() as session:
        acc = session.get(Account, account["id"])
        assert (acc.cash_fen, acc.arrears_fen, acc.invoiceable_fen) == (7000, 0, 3000)


def test_lost_notify_is_recovered_by_querying_the_order(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    sandbox.max_notify_attempts = 1
    alipay_http.add("POST", "http://wallet.test/alipay/notify", body=requests.ConnectionError("lost"))
    # The mock above is consulted first for the notify URL: the notify never arrives.
    alipay_http._registry._responses.insert(0, alipay_http._registry._responses.pop())
    scan_and_pay(client, order["qr_code"])
    assert cash(wallet, account["id"]) == 0
    status = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token)).get_json()
    assert status["status"] == "paid"
    assert cash(wallet, account["id"]) == 10000


def test_late_notify_after_the_query_credited_is_acknowledged_and_credits_nothing_more(
    client, wallet, account, account_token, alipay_http, sandbox
):
    order = create_topup(client, account, account_token)
    sandbox.max_notify_attempts = 1
    alipay_http._registry._responses.insert(
        0, responses.Response("POST", "http://wallet.test/alipay/notify", body=requests.ConnectionError("late"))
    )
    scan_and_pay(client, order["qr_code"])
    status = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token)).get_json()
    assert status["status"] == "paid" and cash(wallet, account["id"]) == 10000
    # Alipay resends the notify it could not deliver, for about 25 hours.
    assert post_notify(client, paid_notify(wallet, sandbox, order)).get_data() == b"success"
    assert cash(wallet, account["id"]) == 10000
    assert [n.outcome for n in notifications(wallet)] == ["duplicate"]


def test_status_queries_are_rate_limited_per_order(client, wallet, account, account_token, alipay_http, sandbox):
    order = create_topup(client, account, account_token)
    calls_before = len([c for c in alipay_http.calls if "gateway.do" in c.request.url])
    for _ in range(5):
        client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token))
    queries = len([c for c in alipay_http.calls if "gateway.do" in c.request.url]) - calls_before
    assert queries == 1
    wallet.clock.advance(seconds=6)
    client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(account_token))
    assert len([c for c in alipay_http.calls if "gateway.do" in c.request.url]) - calls_before == 2


def test_poll_job_credits_paid_orders_and_closes_expired_ones(app, client, wallet, account, account_token, alipay_http, sandbox):
    from app.jobs import run_job

    paid = create_topup(client, account, account_token)
    unpaid = create_topup(client, account, account_token, "5.00")
    sandbox.max_notify_attempts = 1
    alipay_http._registry._responses.insert(
        0, responses.Response("POST", "http://wallet.test/alipay/notify", body=requests.ConnectionError("lost"))
    )
    scan_and_pay(client, paid["qr_code"])
    wallet.clock.advance(minutes=20)
    summary = run_job(wallet, "alipay-poll")
    assert "credited 1" in summary and "closed 1" in summary
    with wallet.db.sessions() as session:
        assert session.get(TopupOrder, paid["out_trade_no"]).status == "paid"
        assert session.get(TopupOrder, unpaid["out_trade_no"]).status == "closed"
    assert cash(wallet, account["id"]) == 10000


def test_another_accounts_order_is_not_found(client, account, account_token, new_account, token_for, alipay_http):
    order = create_topup(client, account, account_token)
    other = new_account("Other")
    response = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(token_for("account", other["id"])))
    assert response.status_code == 404


def test_admin_cannot_create_topups_for_a_foreign_role_and_amounts_are_strict(client, account, account_token, alipay_http):
    for amount in (100, "1e2", "-5.00", "0.00", "100.001"):
        response = client.post(f"/api/v1/accounts/{account['id']}/topups",
                               json={"amount": amount, "method": "alipay"}, headers=bearer(account_token))
        assert response.status_code == 422, amount
    response = client.post(f"/api/v1/accounts/{account['id']}/topups",
                           json={"amount": "1.00", "method": "bitcoin"}, headers=bearer(account_token))
    assert response.status_code == 422


class RecordingGateway:
    """The app's gateway, noting which orders were queried."""

    def __init__(self, gateway):
        self.gateway, self.queried = gateway, []

    def query(self, out_trade_no):
        self.queried.append(out_trade_no)
        return self.gateway.query(out_trade_no)

    def close(self, out_trade_no):
        return self.gateway.close(out_trade_no)


def test_poll_job_takes_the_orders_queried_least_recently_so_none_is_starved(
    client, wallet, account, account_token, alipay_http, sandbox
):
    from app.services.topups import poll_pending_topups

    orders = []
    for _ in range(3):
        orders.append(create_topup(client, account, account_token)["out_trade_no"])
        wallet.clock.advance(seconds=10)
    wallet.clock.advance(minutes=2)  # all stale, none expired: each stays pending when queried

    runs = []
    for _ in range(2):
        gateway = RecordingGateway(wallet.gateway)
        poll_pending_topups(wallet.db, wallet.clock, gateway, batch=2)
        runs.append(gateway.queried)
        wallet.clock.advance(minutes=1)
    assert runs[0] == orders[:2]
    # The order left out of the first run comes first in the next, before those just queried.
    assert runs[1] == [orders[2], orders[0]]


def test_poll_job_stops_when_alipay_is_unreachable_and_the_rest_comes_first_next_time(
    client, wallet, account, account_token, alipay_http, sandbox
):
    from app.domain.errors import GatewayTimeout
    from app.services.topups import UNREACHABLE_AFTER, poll_pending_topups

    orders = []
    for _ in range(UNREACHABLE_AFTER + 2):
        orders.append(create_topup(client, account, account_token)["out_trade_no"])
        wallet.clock.advance(seconds=10)
    wallet.clock.advance(minutes=2)

    class Down:
        def __init__(self):
            self.queried = []

        def query(self, out_trade_no):
            self.queried.append(out_trade_no)
            raise GatewayTimeout("Alipay did not answer in time")

        def close(self, out_trade_no):
            raise AssertionError("close while Alipay is down")

    down = Down()
    counts = poll_pending_topups(wallet.db, wallet.clock, down)
    assert down.queried == orders[:UNREACHABLE_AFTER]
    assert (counts["errors"], counts["deferred"], counts["queried"]) == (UNREACHABLE_AFTER, 2, 0)
    wallet.clock.advance(minutes=1)

    back = RecordingGateway(wallet.gateway)
    counts = poll_pending_topups(wallet.db, wallet.clock, back)
    # The orders the outage left out come first, then the ones that failed.
    assert back.queried == orders[UNREACHABLE_AFTER:] + orders[:UNREACHABLE_AFTER]
    assert counts["deferred"] == 0 and counts["errors"] == 0
    with wallet.db.sessions() as session:
        assert {session.get(TopupOrder, number).status for number in orders} == {"pending"}


class AnsweringGateway:
    """Alipay answering every query with one trade status."""

    def __init__(self, **answer):
        self.answer, self.closed = answer, []

    def query(self, out_trade_no):
        from app.adapters.alipay.gateway import TradeStatus

        return TradeStatus(out_trade_no, "2026112622001400001", paid_at=None, **self.answer)

    def close(self, out_trade_no):
        self.closed.append(out_trade_no)
        return True


@pytest.mark.parametrize("status", ["TRADE_SUCCESS", "TRADE_FINISHED"])
def test_queried_payment_of_another_amount_credits_nothing_and_the_order_is_never_closed(
    client, wallet, account, account_token, alipay_http, status
):
    from app.services.topups import poll_pending_topups

    order = create_topup(client, account, account_token)
    wallet.clock.advance(minutes=20)  # past its expiry: an unpaid order would be closed
    gateway = AnsweringGateway(status=status, total_amount_fen=9999)
    counts = poll_pending_topups(wallet.db, wallet.clock, gateway)
    assert (counts["queried"], counts["credited"], counts["closed"]) == (1, 0, 0)
    assert gateway.closed == []
    assert cash(wallet, account["id"]) == 0
    with wallet.db.sessions() as session:
        assert session.get(TopupOrder, order["out_trade_no"]).status == "pending"


def test_queried_trade_finished_credits_the_order_once(client, wallet, account, account_token, alipay_http):
    from app.services.topups import poll_pending_topups

    order = create_topup(client, account, account_token)
    wallet.clock.advance(minutes=2)
    gateway = AnsweringGateway(status="TRADE_FINISHED", total_amount_fen=10000)
    assert poll_pending_topups(wallet.db, wallet.clock, gateway)["credited"] == 1
    assert poll_pending_topups(wallet.db, wallet.clock, gateway)["queried"] == 0  # paid: no longer polled
    assert cash(wallet, account["id"]) == 10000
    with wallet.db.sessions() as session:
        assert session.get(TopupOrder, order["out_trade_no"]).credited_by == "query"


def test_jobs_run_alipay_poll_exits_5_and_records_errors_when_orders_could_not_be_queried(
        app, client, wallet, account, account_token, alipay_http):
    from app.adapters.db.models import JobRun

    create_topup(client, account, account_token)
    wallet.clock.advance(minutes=20)
    alipay_http._registry._responses.insert(
        0, responses.Response("POST", "http://wallet.test/_sandbox/alipay/gateway.do",
                              body=requests.ConnectionError("Alipay unreachable"))
    )
    result = app.test_cli_runner().invoke(args=["jobs", "run", "alipay-poll"])
    assert result.exit_code == 5, result.output
    assert "errors 1" in result.output and "1 of its items failed" in result.output
    with wallet.db.sessions() as session:
        assert session.scalars(select(JobRun.outcome)).all() == ["errors"]


def test_jobs_run_alipay_poll_exits_0_when_every_order_was_queried(app, client, wallet, account, account_token, alipay_http):
    from app.adapters.db.models import JobRun

    create_topup(client, account, account_token)
    wallet.clock.advance(minutes=20)
    result = app.test_cli_runner().invoke(args=["jobs", "run", "alipay-poll"])
    assert result.exit_code == 0, result.output
    assert "queried 1" in result.output and "errors 0" in result.output
    with wallet.db.sessions() as session:
        assert session.scalars(select(JobRun.outcome)).all() == ["ok"]
