"""The customer's checkout page (QR code, live status) and the result page after paying.

Both are reached by the unguessable ``out_trade_no`` alone, so the billing console can hand the
checkout URL to a customer's browser; they show an amount and a status, nothing about the account.
"""
from __future__ import annotations

import io
from urllib.parse import urlsplit

import segno
from flask import Blueprint, abort, current_app, jsonify, render_template

from ..domain.errors import NotFound
from ..domain.money import format_fen
from ..services import topups
from .page_session import page_headers

pages = Blueprint("pages", __name__)
# A payment page in someone else's frame is a clickjacking lure; its status is never cached.
pages.after_request(page_headers)


def _order(out_trade_no: str):
    if len(out_trade_no) > 64:
        abort(404)
    try:
        return topups.get_topup(current_app.extensions["wallet"].db, out_trade_no)
    except NotFound:
        abort(404)


def _status_label(view, now) -> str:
    if view.status == "pending" and now >= view.expires_at:
        return "expired"
    return view.status


def qr_svg(data: str) -> str:
    """Render ``data`` as an inline SVG QR code that the stylesheet sizes.

    Black on white whatever the page's colours, with the four-module quiet zone the QR standard
    asks for, and no fixed size (a viewBox only), so that it scales without being cropped. The
    page names it (its text alternative) on the element around it.
    """
    buffer = io.BytesIO()
    segno.make(data, error="m").save(
        buffer, kind="svg", scale=1, border=4, dark="#000", light="#fff", xmldecl=False, svgns=True,
        omitsize=True, svgclass=None, lineclass=None,
    )
    return buffer.getvalue().decode("utf-8")


def time_left(seconds: int) -> str:
    """Say how long a code can still be paid: ``"14:59"``, or ``"2:14:59"`` from an hour on."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


@pages.get("/checkout/<out_trade_no>")
def checkout(out_trade_no: str):
    view = _order(out_trade_no)
    now = current_app.extensions["wallet"].clock.now()
    amount = format_fen(view.amount_fen)
    seconds_left = max(0, int((view.expires_at - now).total_seconds()))
    qr_title = f"Alipay QR code to pay {amount} CNY for order {view.out_trade_no}"
    return render_template(
        "checkout.html",
        order=view,
        amount=amount,
        status=_status_label(view, now),
        qr=qr_svg(view.qr_code) if view.qr_code else None,
        qr_title=qr_title,
        qr_link=_web_link(view.qr_code),
        seconds_left=seconds_left,
        time_left=time_left(seconds_left),
    )


def _web_link(url: str | None) -> str | None:
    """``url`` when a browser may follow it from our page (http or https), else None."""
    try:
        return url if url and urlsplit(url).scheme.lower() in ("http", "https") else None
    except ValueError:  # an unparsable URL, such as an unclosed IPv6 bracket
        return None


@pages.get("/checkout/<out_trade_no>/status")
def checkout_status(out_trade_no: str):
    """The status the checkout page polls; a pending order is checked with Alipay now and then."""
    w = current_app.extensions["wallet"]
    _order(out_trade_no)
    view = topups.refresh_topup(w.db, w.clock, w.gateway, w.settings, out_trade_no)
    return jsonify(status=_status_label(view, w.clock.now()), paid=view.status == "paid")


@pages.get("/checkout/<out_trade_no>/result")
def topup_result(out_trade_no: str):
    view = _order(out_trade_no)
    w = current_app.extensions["wallet"]
    if view.status == "pending":
        view = topups.refresh_topup(w.db, w.clock, w.gateway, w.settings, out_trade_no)
    return render_template(
        "result.html", order=view, amount=format_fen(view.amount_fen), status=_status_label(view, w.clock.now())
    )


@pages.get("/checkout/result")
def topup_result_unknown():
    return render_template("result.html", order=None, amount=None, status="unknown")
