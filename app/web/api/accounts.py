"""Accounts, workspaces, the wallet, the ledger and bank-transfer details."""
from __future__ import annotations

from flask import jsonify

from ...domain.money import format_fen
from ...domain.remittance import display
from ...services import accounts, wallet as wallet_service
from ..auth import require
from ..idempotency import idempotent
from ..inputs import json_body, required_choice, required_str
from . import api
from .common import decode_cursor, encode_cursor, iso, page_limit, wallet


@api.post("/accounts")
@require("admin")
@idempotent
def create_account():
    body = json_body()
    view = accounts.create_account(
        wallet().db,
        wallet().clock,
        name=required_str(body, "name"),
        settlement=required_choice(body, "settlement", accounts.SETTLEMENTS),
    )
    return jsonify(
        id=view.id, name=view.name, settlement=view.settlement, remittance_code=view.remittance_code
    ), 201


@api.get("/accounts/<account_id>")
@require("finance", "account", account_arg="account_id")
def get_account(account_id: str):
    view = accounts.get_account(wallet().db, account_id)
    return jsonify(
        id=view.id, name=view.name, settlement=view.settlement, remittance_code=view.remittance_code
    )


@api.post("/accounts/<account_id>/workspaces")
@require("admin")
@idempotent
def add_workspace(account_id: str):
    body = json_body()
    result = accounts.add_workspace(
        wallet().db,
        wallet().clock,
        account_id=account_id,
        workspace_id=required_str(body, "workspace_id", max_length=100),
    )
    return jsonify(result), 201


@api.get("/accounts/<account_id>/wallet")
@require("finance", "account", account_arg="account_id")
def get_wallet(account_id: str):
    figures = wallet_service.wallet_figures(wallet().db, account_id, wallet().clock.now())
    return jsonify(
        cash=format_fen(figures.cash_fen),
        arrears=format_fen(figures.arrears_fen),
        coupons={
            "regular": format_fen(figures.regular_coupons_fen),
            "discount": format_fen(figures.discount_coupons_fen),
        },
        prepaid_cards=format_fen(figures.prepaid_cards_fen),
        invoiceable=format_fen(figures.invoiceable_fen),
    )


@api.get("/accounts/<account_id>/ledger")
@require("finance", "account", account_arg="account_id")
def get_ledger(account_id: str):
    lines, next_id = wallet_service.ledger_page(
        wallet().db, account_id, before_id=decode_cursor(), limit=page_limit()
    )
    return jsonify(
        entries=[
            {
                "id": line.id,
                "kind": line.kind,
                "bucket": line.bucket,
                "unit_id": str(line.unit_id) if line.unit_id is not None else None,
                "amount": format_fen(line.amount_fen),
                "balance_after": format_fen(line.balance_after_fen),
                "reference": line.reference,
                "memo": line.memo,
                "created_at": iso(line.created_at),
            }
            for line in lines
        ],
        next_cursor=encode_cursor(next_id),
    )


@api.get("/accounts/<account_id>/bank-transfer")
@require("finance", "account", account_arg="account_id")
def bank_transfer_details(account_id: str):
    view = accounts.get_account(wallet().db, account_id)
    settings = wallet().settings
    return jsonify(
        bank_name=settings.bank_name,
        account_name=settings.bank_account_name,
        account_number=settings.bank_account_number,
        remittance_code=view.remittance_code,
        remittance_code_display=display(view.remittance_code),
    )
