"""A paid order that would take cash past the balance limit, found by asking Alipay.

The status read and the poll job leave it pending (credited by nothing) and go on: the read
answers 200 as it does for any pending order, the poll job counts it as an order it could not
handle and still settles the others. A notify of such a payment is recorded for review and
not acknowledged, as a notify failing any check.
"""
from app.adapters.db.models import TopupOrder
from app.domain.money import MAX_BALANCE_FEN
from app.services.topups import poll_pending_topups
from tests.integration.test_topups import AnsweringGateway, cash, create_topup, notifications, paid_notify, post_notify
from tests.conftest import bearer
from tests.integration.wallet_helpers import assert_ledger_clean, top_up


def test_a_status_read_of_a_payment_past_the_limit_answers_the_pending_order(
    client, new_account, token_for, wallet, alipay_http, monkeypatch
):
    account = new_account()
    token = token_for("account", account["id"])
    order = create_topup(client, account, token)
    top_up(wallet, account["id"], MAX_BALANCE_FEN, "fill")
    gateway = AnsweringGateway(status="TRADE_SUCCESS", total_amount_fen=10000)
    monkeypatch.setattr(wallet, "gateway", gateway)
    answer = client.get(f"/api/v1/topups/{order['out_trade_no']}", headers=bearer(token))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["status"] == "pending"
    assert cash(wallet, account["id"]) == MAX_BALANCE_FEN
    assert_ledger_clean(wallet)


def test_the_poll_job_counts_a_payment_past_the_limit_as_an_error_and_credits_the_others(
    client, new_account, token_for, wallet, alipay_http
):
    full, other = new_account(), new_account()
    create_topup(client, full, token_for("account", full["id"]))
    create_topup(client, other, token_for("account", other["id"]))
    top_up(wallet, full["id"], MAX_BALANCE_FEN, "fill")
    wallet.clock.advance(minutes=2)
    counts = poll_pending_topups(wallet.db, wallet.clock, AnsweringGateway(status="TRADE_SUCCESS", total_amount_fen=10000))
    assert (counts["queried"], counts["credited"], counts["errors"]) == (2, 1, 1)
    assert cash(wallet, full["id"]) == MAX_BALANCE_FEN
    assert cash(wallet, other["id"]) == 10000
    assert_ledger_clean(wallet)


def test_a_paid_notify_past_the_limit_is_recorded_for_review_and_not_acknowledged(
    client, new_account, token_for, wallet, alipay_http, sandbox
):
    # Like any notify that fails a check: kept for an operator to see, Alipay told to retry.
    account = new_account()
    order = create_topup(client, account, token_for("account", account["id"]))
    top_up(wallet, account["id"], MAX_BALANCE_FEN, "fill")
    answer = post_notify(client, paid_notify(wallet, sandbox, order))
    assert answer.get_data() != b"success"
    [notify] = notifications(wallet)
    assert (notify.out_trade_no, notify.outcome, notify.needs_review) == (
        order["out_trade_no"], "rejected_balance_limit", True
    )
    assert "balance" in notify.detail
    # On PostgreSQL the one-statement credit leaves it to the general path, which refuses it.
    assert cash(wallet, account["id"]) == MAX_BALANCE_FEN
    assert_ledger_clean(wallet)
    assert cash(wallet, account["id"]) == MAX_BALANCE_FEN
    with wallet.db.sessions() as session:
        assert session.get(TopupOrder, order["out_trade_no"]).status == "pending"
    assert_ledger_clean(wallet)
