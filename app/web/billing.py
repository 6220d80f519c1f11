"""The customer's pages: the wallet, recharging with Alipay, bank-transfer details, activating
coupon codes and buying prepaid cards."""
from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, url_for

from ..domain import deduction
from ..domain.errors import (
    DomainError,
    GatewayError,
    GatewayRejected,
    InsufficientFunds,
    InvalidInput,
    RateLimited,
)
from ..domain.money import parse_amount
from ..domain.remittance import display
from ..services import accounts, topups
from ..services.bills import recent_bills
from ..services.coupons import activate_coupon
from ..services.prepaid_cards import buy_prepaid_card
from ..services.units import newest_cards, newest_coupons
from ..services.wallet import ledger_page, wallet_figures
from .idempotency import caller_key
from .inputs import query_number
from .page_session import guard

log = logging.getLogger(__name__)
billing = Blueprint("billing", __name__, url_prefix="/billing")
guard(billing, roles=("account",), others_to_home=True)

METHODS = ("alipay", "bank_transfer")
RECENT_ENTRIES = 20
RECENT_BILLS = 20
# Coupons and prepaid cards shown on the wallet page: the newest (the API lists them all).
RECENT_UNITS = 50
MAX_CODE_LENGTH = 100
# What the sources of a bill are called in the deduction order shown on the wallet page.
SOURCE_NAMES = {
    deduction.REGULAR_COUPON: "regular coupons",
    deduction.DISCOUNT_COUPON: "discount coupons",
    deduction.PREPAID_CARD: "prepaid cards",
    deduction.CASH: "cash",
    deduction.ARREARS: "negative balance",
    deduction.CLOUD_ACCOUNT: "cloud account",
}


def _wallet():
    return current_app.extensions["wallet"]


@billing.get("/")
def wallet_page():
    w, account_id = _wallet(), g.principal.account_id
    account = accounts.get_account(w.db, account_id)
    figures = wallet_figures(w.db, account_id, w.clock.now())
    before_id = query_number("before")
    entries, more = ledger_page(w.db, account_id, before_id=before_id, limit=RECENT_ENTRIES)
    now = w.clock.now()
    coupons, coupons_total = newest_coupons(w.db, account_id, now, limit=RECENT_UNITS)
    cards, cards_total = newest_cards(w.db, account_id, now, limit=RECENT_UNITS)
    return render_template(
        "billing/wallet.html",
        account=account,
        remittance_code=display(account.remittance_code),
        figures=figures,
        balance_fen=figures.cash_fen - figures.arrears_fen,
        order_general=_order_text(account.settlement, "general"),
        order_sms=_order_text(account.settlement, "sms"),
        entries=entries,
        older_than=more,
        paged=before_id is not None,
        coupons=coupons,
        coupons_total=coupons_total,
        cards=cards,
        cards_total=cards_total,
        bills=recent_bills(w.db, account_id, limit=RECENT_BILLS),
    )


def _order_text(settlement: str, product: str) -> str:
    return ", ".join(SOURCE_NAMES[source] for source in deduction.order_for(settlement, product))


@billing.get("/recharge")
def recharge_form():
    method = request.args.get("method") if request.args.get("method") in METHODS else "alipay"
    return render_template("billing/recharge.html", amount="", method=method, error=None)


@billing.post("/recharge")
def recharge_submit():
    amount_text = request.form.get("amount", "")
    method = request.form.get("method", "")

    def again(error: str, status: int):
        shown = method if method in METHODS else "alipay"
        return render_template("billing/recharge.html", amount=amount_text, method=shown, error=error), status

    if method not in METHODS:
        return again("Choose Alipay or offline bank transfer.", 422)
    if method == "bank_transfer":
        if not amount_text:
            return redirect(url_for(".bank_transfer"))
        try:
            parse_amount(amount_text)
        except InvalidInput as exc:
            return again(exc.detail, 422)
        return redirect(url_for(".bank_transfer", amount=amount_text))
    try:
        amount_fen = parse_amount(amount_text)
        w = _wallet()
        order = topups.create_topup(
            w.db, w.clock, w.gateway, w.settings, account_id=g.principal.account_id, amount_fen=amount_fen
        )
    except InvalidInput as exc:
        return again(exc.detail, 422)
    except GatewayRejected:
        return again("Alipay declined to create this payment. Please try again later or use a bank transfer.", 502)
    except GatewayError:
        return again("Alipay cannot be reached right now. Please try again in a minute.", 502)
    except DomainError as exc:
        log.warning("page recharge refused", extra={"code": exc.code})
        return again("The payment could not be created. Please try again.", exc.status)
    return redirect(url_for("pages.checkout", out_trade_no=order.out_trade_no))


@billing.get("/bank-transfer")
def bank_transfer():
    w = _wallet()
    account = accounts.get_account(w.db, g.principal.account_id)
    amount = request.args.get("amount", "")
    try:
        amount_fen = parse_amount(amount) if amount else None
    except InvalidInput:
        amount_fen = None
    return render_template(
        "billing/bank_transfer.html",
        settings=w.settings,
        remittance_code=display(account.remittance_code),
        amount_fen=amount_fen,
    )


@billing.get("/coupons/activate")
def activate_form():
    return render_template("billing/activate_coupon.html", error=None)


@billing.post("/coupons/activate")
def activate_submit():
    code = request.form.get("code", "").strip()

    def again(error: str, status: int):
        return render_template("billing/activate_coupon.html", error=error), status

    if not code:
        return again("Enter the activation code.", 422)
    if len(code) > MAX_CODE_LENGTH:
        return again("This activation code is unknown.", 422)
    w, principal = _wallet(), g.principal
    try:
        activate_coupon(
            w.db,
            w.clock,
            secret_key=w.settings.secret_key,
            account_id=principal.account_id,
            code=code,
            token_id=principal.token_id,
            actor=principal.actor,
        )
    except (InvalidInput, RateLimited) as exc:
        return again(_sentence(exc.detail), exc.status)
    return redirect(url_for(".wallet_page"))


@billing.get("/prepaid-cards/buy")
def buy_card_form():
    return _buy_card_page(amount="", error=None)


@billing.post("/prepaid-cards/buy")
def buy_card_submit():
    amount_text = request.form.get("amount", "")
    request_id = request.form.get("request_id", "")
    w, principal = _wallet(), g.principal
    try:
        amount_fen = parse_amount(amount_text)
        buy_prepaid_card(
            w.db,
            w.clock,
            w.settings,
            account_id=principal.account_id,
            amount_fen=amount_fen,
            actor=principal.actor,
            # The form's one-time id keys the purchase: sending the same form twice buys one card.
            request_key=caller_key(f"page:{request_id}") if 0 < len(request_id) <= 64 else None,
        )
    except InsufficientFunds:
        return _buy_card_page(amount_text, "Your cash balance is too low to buy this card. Recharge first.", 409)
    except InvalidInput as exc:
        if exc.code == "idempotency_key_reused":
            shown = "This form was already used for another purchase. Please submit again."
            return _buy_card_page(amount_text, shown, 409)
        return _buy_card_page(amount_text, _sentence(exc.detail), exc.status)
    return redirect(url_for(".wallet_page"))


def _buy_card_page(amount: str, error: str | None, status: int = 200):
    w = _wallet()
    figures = wallet_figures(w.db, g.principal.account_id, w.clock.now())
    page = render_template(
        "billing/buy_card.html",
        amount=amount,
        error=error,
        cash_fen=figures.cash_fen,
        request_id=secrets.token_urlsafe(24),
        tiers=sorted(w.settings.discount_tiers, key=lambda tier: tier.threshold_fen),
    )
    return page, status


def _sentence(detail: str) -> str:
    return detail[:1].upper() + detail[1:] + ("" if detail.endswith(".") else ".")


@billing.route("/<path:_rest>", methods=["GET", "POST"])
def unknown(_rest: str):
    """Answer unknown billing pages after the sign-in check, so none is visible without one."""
    abort(404)
