"""Pay-as-you-go bills (admin): settled once; a repeat answers 200 with the first result."""
from __future__ import annotations

from flask import jsonify

from ...domain.deduction import PRODUCTS
from ...services import bills
from ..auth import current_principal, require
from ..idempotency import idempotent
from ..inputs import json_body, required_amount, required_choice, required_str
from . import api
from .common import wallet


@api.post("/bills")
@require("admin")
@idempotent
def settle_bill():
    body = json_body()
    settled = bills.settle_bill(
        wallet().db,
        wallet().clock,
        bill_id=required_str(body, "bill_id", max_length=100),
        workspace_id=required_str(body, "workspace_id", max_length=100),
        product=required_choice(body, "product", PRODUCTS),
        amount_fen=required_amount(body),
        marketplace=wallet().extras.get("cloud_marketplace"),
        actor=current_principal().actor,
    )
    return jsonify(settled.result), 200 if settled.replayed else 201
