"""Prepaid cards: purchase with cash and listing (the account), allocation (admin)."""
from __future__ import annotations

from flask import jsonify

from ...services import prepaid_cards
from ..auth import current_principal, require
from ..idempotency import idempotent, request_key
from ..inputs import json_body, required_amount, required_datetime, required_str
from . import api
from .common import wallet


@api.post("/accounts/<account_id>/prepaid-cards")
@require("account", account_arg="account_id")
@idempotent
def buy_prepaid_card(account_id: str):
    body = json_body()
    result = prepaid_cards.buy_prepaid_card(
        wallet().db,
        wallet().clock,
        wallet().settings,
        account_id=account_id,
        amount_fen=required_amount(body),
        actor=current_principal().actor,
        request_key=request_key(),
    )
    return jsonify(result), 201


@api.post("/prepaid-cards")
@require("admin")
@idempotent
def allocate_prepaid_card():
    body = json_body()
    card = prepaid_cards.allocate_prepaid_card(
        wallet().db,
        wallet().clock,
        account_id=required_str(body, "account_id", max_length=32),
        amount_fen=required_amount(body),
        expires_at=required_datetime(body, "expires_at"),
        actor=current_principal().actor,
        request_key=request_key(),
    )
    return jsonify(card), 201


@api.get("/accounts/<account_id>/prepaid-cards")
@require("finance", "account", account_arg="account_id")
def list_prepaid_cards(account_id: str):
    return jsonify(cards=prepaid_cards.list_prepaid_cards(wallet().db, wallet().clock, account_id))
