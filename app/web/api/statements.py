"""Bank statements: upload, the line queues, manual match and undo, a reconcile run."""
from __future__ import annotations

from flask import jsonify, request

from ...adapters.statements import FORMATS
from ...domain.errors import InvalidInput
from ...domain.money import format_fen
from ...services import reconcile, statement_import, statement_lines
from ..auth import current_principal, require
from ..idempotency import idempotent
from ..inputs import json_body, required_str, storable_text
from . import api
from .common import decode_cursor, encode_cursor, page_limit, wallet

MAX_REASON = 1000


@api.post("/statements")
@require("finance")
@idempotent
def upload_statement():
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInput(
            "a multipart field 'file' is required", code="missing_field", field="file"
        )
    format = (request.form.get("format") or "auto").strip().lower()
    if format not in FORMATS:
        raise InvalidInput(
            f"format must be one of {', '.join(FORMATS)}", code="invalid_field", field="format"
        )
    w = wallet()
    result = statement_import.import_statement(
        w.db,
        w.clock,
        data=upload.read(),
        filename=storable_text(upload.filename or "", "file"),
        format=format,
        actor=current_principal().actor,
    )
    body = {
        "id": result.statement_id,
        "lines_total": result.lines_total,
        "lines_new": result.lines_new,
        **{status: result.counts.get(status, 0) for status in reconcile.STATUSES},
    }
    return jsonify(body), 201 if result.created else 200


@api.get("/statement-lines")
@require("finance")
def list_statement_lines():
    status = request.args.get("status")
    if status is not None and status not in reconcile.STATUSES:
        raise InvalidInput(
            f"status must be one of {', '.join(reconcile.STATUSES)}",
            code="invalid_field",
            field="status",
        )
    lines, next_id = statement_lines.list_lines(
        wallet().db, status=status, after_id=decode_cursor(), limit=page_limit()
    )
    return jsonify(lines=[_line(line) for line in lines], next_cursor=encode_cursor(next_id))


@api.post("/statement-lines/<int(max=9223372036854775807):line_id>/match")
@require("finance")
@idempotent
def match_statement_line(line_id: int):
    body = json_body()
    account_id = required_str(body, "account_id", max_length=32)
    reason = required_str(body, "reason", max_length=MAX_REASON)
    w = wallet()
    view = statement_lines.match_line(
        w.db,
        w.clock,
        line_id=line_id,
        account_id=account_id,
        reason=reason,
        actor=current_principal().actor,
    )
    return jsonify(_line(view))


@api.post("/statement-lines/<int(max=9223372036854775807):line_id>/unmatch")
@require("finance")
@idempotent
def unmatch_statement_line(line_id: int):
    reason = required_str(json_body(), "reason", max_length=MAX_REASON)
    w = wallet()
    view = statement_lines.unmatch_line(
        w.db, w.clock, line_id=line_id, reason=reason, actor=current_principal().actor
    )
    return jsonify(_line(view))


@api.post("/reconcile")
@require("finance")
@idempotent
def run_reconcile():
    w = wallet()
    return jsonify(reconcile.reconcile(w.db, w.clock))


def _line(line: statement_lines.LineView) -> dict:
    return {
        "id": line.id,
        "statement_id": line.statement_id,
        "booked_at": line.booked_at,
        "amount": format_fen(line.amount_fen),
        "currency": line.currency,
        "direction": line.direction,
        "counterparty_name": line.counterparty_name,
        "counterparty_account": line.counterparty_account,
        "memo": line.memo,
        "status": line.status,
        "account_id": line.account_id,
        "suggested_account_id": line.suggested_account_id,
        "reason": line.reason,
    }
