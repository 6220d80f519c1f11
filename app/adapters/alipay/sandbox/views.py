"""HTTP face of the sandbox: ``gateway.do``, the payer page behind the QR code, and "Pay"."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, redirect, render_template_string, request, url_for

from ..beijing import format_beijing
from ..charsets import codec_for
from .delivery import deliver_payment_notify
from .gateway_api import handle_gateway_request
from .notify_builder import encode_form, sign_params
from .state import WAIT_BUYER_PAY, SandboxRefusal, SandboxState, SandboxTrade

_PAYER_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Alipay sandbox</title></head>
<body>
  <h1>Alipay sandbox</h1>
  <p>This page stands in for the Alipay app after scanning the QR code. No real money moves.</p>
  <dl>
    <dt>Subject</dt><dd data-testid="sandbox-subject">{{ trade.subject }}</dd>
    <dt>Amount</dt><dd data-testid="sandbox-amount">{{ trade.total_amount }} CNY</dd>
    <dt>Status</dt><dd data-testid="sandbox-status">{{ status }}</dd>
  </dl>
  {% if payable %}
  <form method="post" action="{{ url_for('.pay', token=token) }}">
    <label>Notify charset
      <select name="charset">
        {% for option in ("utf-8", "gbk") %}
        <option value="{{ option }}"{% if option == charset %} selected{% endif %}>{{ option }}</option>
        {% endfor %}
      </select>
    </label>
    <button type="submit" data-testid="sandbox-pay">Pay {{ trade.total_amount }} CNY</button>
  </form>
  {% endif %}
</body>
</html>
"""


_DUPLICATE_PARAMETER = (
    '{"error_response":{"code":"40002","msg":"Invalid Arguments",'
    '"sub_code":"isv.duplicate-parameter","sub_msg":"重复的参数"}}'
)


def create_sandbox_blueprint(state: SandboxState) -> Blueprint:
    """Return a blueprint serving the sandbox gateway and payer pages from ``state``."""
    bp = Blueprint("alipay_sandbox", __name__)

    @bp.route("/gateway.do", methods=["GET", "POST"])
    def gateway() -> Response:
        params = _single_valued_params()
        if params is None:
            text = _DUPLICATE_PARAMETER
        else:
            text = handle_gateway_request(
                state, params, lambda token: url_for(".payer_page", token=token, _external=True)
            )
        return Response(text, 200, content_type="text/html;charset=utf-8")

    @bp.get("/qr/<token>")
    def payer_page(token: str):
        trade = state.scan(token)
        if trade is None:
            abort(404)
        return _render(trade)

    @bp.post("/qr/<token>/pay")
    def pay(token: str):
        charset = request.form.get("charset") or state.notify_charset
        if codec_for(charset) is None or charset.lower() not in ("utf-8", "gbk"):
            abort(400)
        try:
            result = state.pay(token, charset=charset.lower())
        except SandboxRefusal:
            trade = state.scan(token)
            return _render(trade, status=409)
        if result is None:
            abort(404)
        trade, newly_paid = result
        if newly_paid:
            # Delivered before redirecting so that tests and local runs see it at once; whatever
            # the outcome, the browser is redirected, as with Alipay (the merchant recovers by
            # querying when the notify is lost).
            deliver_payment_notify(state, trade)
        return redirect(_return_url(state, trade), code=302)

    def _render(trade: SandboxTrade, status: int = 200):
        html = render_template_string(
            _PAYER_PAGE,
            trade=trade,
            token=trade.token,
            status=trade.status if trade.status != "CREATED" else "EXPIRED",
            payable=trade.status == WAIT_BUYER_PAY,
            charset=state.notify_charset,
        )
        return html, status

    return bp


def _single_valued_params() -> dict[str, str] | None:
    """Merge query and form parameters; None if any name is given twice."""
    params: dict[str, str] = {}
    for source in (request.args, request.form):
        for key, values in source.lists():
            if key in params or len(values) != 1:
                return None
            params[key] = values[0]
    return params


def _return_url(state: SandboxState, trade: SandboxTrade) -> str:
    """Build the signed return redirect, as Alipay appends it to the merchant's return URL."""
    charset = trade.notify_charset or state.notify_charset
    signed = sign_params(
        state.alipay_private_key,
        {
            "out_trade_no": trade.out_trade_no,
            "trade_no": trade.trade_no,
            "total_amount": trade.total_amount,
            "app_id": state.app_id,
            "auth_app_id": state.app_id,
            "seller_id": state.seller_id,
            "timestamp": format_beijing(state.now()),
            "method": "alipay.trade.page.pay.return",
            "charset": charset,
            "version": "1.0",
        },
    )
    query = encode_form(signed, charset).decode("ascii")
    separator = "&" if urlsplit(state.return_url).query else "?"
    return state.return_url + separator + query
