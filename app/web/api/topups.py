"""Alipay top-up orders."""
from __future__ import annotations

from flask import jsonify

from ...domain.errors import NotFound
from ...domain.money import format_fen
from ...services import topups
from ..auth import current_principal, require
from ..idempotency import idempotent
from ..inputs import json_body, required_amount, required_choice
from . import api
from .common import iso, wallet


def checkout_url(out_trade_no: str) -> str:
    return f"{wallet().settings.public_base_url}/checkout/{out_trade_no}"


@api.post("/accounts/<account_id>/topups")
@require("account", account_arg="account_id")
@idempotent
def create_topup(account_id: str):
    body = json_body()
    amount_fen = required_amount(body)
    required_choice(body, "method", ("alipay",))
    w = wallet()
    view = topups.create_topup(w.db, w.clock, w.gateway, w.settings, account_id=account_id, amount_fen=amount_fen)
    return jsonify(
        out_trade_no=view.out_trade_no,
        status=view.status,
        amount=format_fen(view.amount_fen),
        qr_code=view.qr_code,
        checkout_url=checkout_url(view.out_trade_no),
        expires_at=iso(view.expires_at),
    ), 201


@api.get("/topups/<out_trade_no>")
@require("finance", "account", "admin")
def get_topup(out_trade_no: str):
    w = wallet()
    principal = current_principal()
    view = topups.get_topup(w.db, out_trade_no) if len(out_trade_no) <= 64 else None
    if view is None or (principal.role == "account" and view.account_id != principal.account_id):
        # Another account's order: its existence is private.
        raise NotFound("no such top-up order", code="topup_not_found")
    view = topups.refresh_topup(w.db, w.clock, w.gateway, w.settings, out_trade_no)
    return jsonify(
        out_trade_no=view.out_trade_no,
        status=view.status,
        amount=format_fen(view.amount_fen),
        paid_at=iso(view.paid_at),
        expires_at=iso(view.expires_at),
        account_id=view.account_id,
    )
