"""Coupons: allocation and activation codes (admin), activation and listing (the account)."""
from __future__ import annotations

import hashlib

from flask import Response, jsonify, request

from ...domain.errors import DomainError, InvalidInput
from ...domain.money import parse_amount
from ...services import coupons, idempotency
from ..auth import current_principal, require
from ..errors import domain_problem
from ..idempotency import idempotent, request_key
from ..inputs import json_body, optional_datetime, optional_str, required_datetime, required_str
from . import api
from .common import wallet


@api.post("/coupons")
@require("admin")
def create_coupons():
    body = json_body()
    if body.get("count") is not None:
        return _issue_codes(body)
    return _allocate(body)


@idempotent
def _allocate(body: dict):
    terms = _coupon_terms(body)
    account_id = required_str(body, "account_id", max_length=32)
    coupon = coupons.allocate_coupon(
        wallet().db,
        wallet().clock,
        account_id=account_id,
        actor=current_principal().actor,
        request_key=request_key(),
        **terms,
    )
    return jsonify(coupon), 201


def _issue_codes(body: dict):
    """Issue codes; with an Idempotency-Key the replay derives the same codes, never stored."""
    count = body["count"]
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidInput("count must be a whole number", code="invalid_field", field="count")
    if optional_str(body, "account_id", max_length=32) is not None:
        raise InvalidInput(
            "give either account_id (allocate one coupon) or count (issue codes), not both",
            code="invalid_field",
            field="count",
        )
    terms = _coupon_terms(body)
    principal = current_principal()
    settings = wallet().settings

    def issue(seed: str | None) -> list[str]:
        return coupons.issue_codes(
            wallet().db,
            wallet().clock,
            secret_key=settings.secret_key,
            count=count,
            actor=principal.actor,
            seed=seed,
            **terms,
        )

    if request.headers.get("Idempotency-Key") is None:
        return jsonify(codes=issue(None)), 201

    # Like ``@idempotent``, but the stored response leaves the codes out: a replay derives
    # them again from the same seed, so they are never stored in plain text.
    claim = {"scope": principal.actor, "key": request.headers["Idempotency-Key"].strip()}
    request_hash = hashlib.sha256(request.get_data(cache=True)).hexdigest()
    seed = f"{claim['scope']}:{claim['key']}:{request_hash}"
    stored = idempotency.begin(
        wallet().db,
        wallet().clock,
        method=request.method,
        path=request.path,
        request_hash=request_hash,
        **claim,
    )
    if stored is not None:
        if stored.status != 201:
            return Response(stored.body, status=stored.status, content_type=stored.content_type)
        try:
            codes = coupons.replay_codes(wallet().db, secret_key=settings.secret_key, seed=seed, count=count)
        except DomainError as exc:
            return domain_problem(exc)
        response = jsonify(codes=codes)
        response.status_code = 201
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        response = jsonify(codes=issue(seed))
        response.status_code = 201
        kept = jsonify(codes_issued=count).get_data()
    except DomainError as exc:
        response = domain_problem(exc)
        kept = response.get_data()
    except Exception:
        idempotency.finish(wallet().db, response=idempotency.StoredResponse(500, b"", ""), **claim)
        raise
    idempotency.finish(
        wallet().db,
        response=idempotency.StoredResponse(response.status_code, kept, response.content_type or ""),
        **claim,
    )
    return response


def _coupon_terms(body: dict) -> dict:
    kind = body.get("kind", "regular")
    if kind != "regular":
        # Discount coupons come only with prepaid-card purchases.
        raise InvalidInput("kind must be regular", code="invalid_field", field="kind")
    if body.get("amount") is None:
        raise InvalidInput("amount is required", code="missing_field", field="amount")
    return {
        "face_value_fen": parse_amount(body["amount"]),
        "valid_from": optional_datetime(body, "valid_from"),
        "expires_at": required_datetime(body, "expires_at"),
    }


@api.post("/accounts/<account_id>/coupons/activate")
@require("account", account_arg="account_id")
@idempotent
def activate_coupon(account_id: str):
    body = json_body()
    principal = current_principal()
    coupon = coupons.activate_coupon(
        wallet().db,
        wallet().clock,
        secret_key=wallet().settings.secret_key,
        account_id=account_id,
        code=required_str(body, "code", max_length=100),
        token_id=principal.token_id,
        actor=principal.actor,
    )
    return jsonify(coupon), 201


@api.get("/accounts/<account_id>/coupons")
@require("finance", "account", account_arg="account_id")
def list_coupons(account_id: str):
    return jsonify(coupons=coupons.list_coupons(wallet().db, wallet().clock, account_id))

