import pytest

from app.domain.payment import Outcome, decide_notify

BASE = {"app_id": "2021", "seller_id": "2088", "total_amount": "100.00", "trade_status": "TRADE_SUCCESS"}


def decide(order_amount_fen=10000, seller="2088", **changes):
    params = {**BASE, **changes}
    return decide_notify(params, our_app_id="2021", our_seller_id=seller, order_amount_fen=order_amount_fen)


@pytest.mark.parametrize("status", ["TRADE_SUCCESS", "TRADE_FINISHED"])
def test_paid_statuses_credit(status):
    decision = decide(trade_status=status)
    assert decision.outcome is Outcome.CREDIT and decision.acknowledge


def test_other_app_id_is_refused_for_review():
    decision = decide(app_id="2099")
    assert decision.outcome is Outcome.WRONG_APP and not decision.acknowledge and decision.needs_review


def test_other_seller_is_refused_when_seller_is_configured():
    assert decide(seller_id="2077").outcome is Outcome.WRONG_SELLER
    assert decide(seller=None, seller_id="2077").outcome is Outcome.CREDIT


def test_unknown_order_is_refused():
    assert decide(order_amount_fen=None).outcome is Outcome.UNKNOWN_ORDER


@pytest.mark.parametrize("total", ["100.01", "99.99", "100.001", "1e2", "", "-100.00"])
def test_total_amount_must_equal_the_order_exactly(total):
    decision = decide(total_amount=total)
    assert decision.outcome is Outcome.AMOUNT_MISMATCH and not decision.acknowledge


def test_equal_amount_spelled_differently_still_matches():
    assert decide(total_amount="100").outcome is Outcome.CREDIT


@pytest.mark.parametrize(
    "refund", [{"refund_fee": "10.00"}, {"gmt_refund": "2026-11-26 12:00:00"}, {"out_biz_no": "R1"}, {"refund_fee": "x"}]
)
def test_refund_notify_never_credits(refund):
    decision = decide(**refund)
    assert decision.outcome is Outcome.REFUND and decision.needs_review and decision.acknowledge


def test_zero_refund_fee_on_a_payment_notify_is_not_a_refund():
    assert decide(refund_fee="0.00").outcome is Outcome.CREDIT


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED"])
def test_unpaid_statuses_are_acknowledged_without_credit(status):
    decision = decide(trade_status=status)
    assert decision.outcome is Outcome.NOT_PAID and decision.acknowledge


def test_unknown_trade_status_is_refused():
    assert decide(trade_status="TRADE_PAID_MAYBE").outcome is Outcome.UNKNOWN_STATUS
