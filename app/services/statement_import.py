"""Importing a bank statement file: store it and its new lines, reconcile them, in one go.

One file is one transaction: its statement row, its new lines, their classification and the
credits of matched lines commit together or not at all. The same bytes again add nothing
(a unique SHA-256); an overlapping statement adds only the lines not stored before (a
unique identity key per bank account, inserted with ``ON CONFLICT DO NOTHING``).
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.bulk import insert_ignoring_conflicts
from ..adapters.db.models import Statement, StatementLine
from ..adapters.statements import parse_statement
from ..domain.errors import StatementRejected
from ..domain.matching import MATCHED, classify_all
from ..domain.statements import ParsedStatement, line_identities
from . import reconcile
from .clock import Clock

log = logging.getLogger(__name__)

MAX_STATEMENT_BYTES = 20 * 1024 * 1024
# Longer identity keys (a bank id of hundreds of characters) are stored as their hash, so
# that the unique index stays small; the mapping is fixed, like the identity scheme itself.
_MAX_KEY = 200
_MAX_ACCOUNT = 100


@dataclass(frozen=True)
class ImportResult:
    statement_id: int
    created: bool  # False: these exact bytes were imported before
    lines_total: int
    lines_new: int
    counts: dict[str, int] = field(default_factory=dict)  # status -> new lines, reconciled


def import_statement(
    db: Database,
    clock: Clock,
    *,
    data: bytes,
    filename: str,
    format: str = "auto",
    actor: str,
) -> ImportResult:
    """Import one statement file and reconcile its new lines; refuse it whole on any doubt."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementRejected(
            f"the file is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MiB", line=1
        )
    sha256 = hashlib.sha256(data).hexdigest()
    known = _known_statement(db, sha256)
    if known is not None:
        return known
    parsed = parse_statement(data, format)
    keys = [_stored(key, _MAX_KEY) for key in line_identities(parsed.lines)]
    now = clock.now()
    with db.transaction() as session:
        statement_id = _insert_statement(session, parsed, sha256, data, filename, actor, now)
        if statement_id is None:
            created = False  # a concurrent import of the same bytes committed first
        else:
            created = True
            counts = _store_lines(session, statement_id, parsed, keys, now)
    if not created:
        return _known_statement(db, sha256)
    lines_new = sum(counts.values())
    log.info(
        "statement imported",
        extra={
            "statement_id": statement_id,
            "format": parsed.format,
            "lines_total": len(parsed.lines),
            "lines_new": lines_new,
            "matched": counts.get(MATCHED, 0),
        },
    )
    return ImportResult(statement_id, True, len(parsed.lines), lines_new, counts)


def _known_statement(db: Database, sha256: str) -> ImportResult | None:
    with db.sessions() as session:
        row = session.execute(
            select(Statement.id, Statement.lines_total).where(Statement.sha256 == sha256)
        ).first()
    if row is None:
        return None
    return ImportResult(row.id, False, row.lines_total, 0, {})


def _insert_statement(
    session: Session,
    parsed: ParsedStatement,
    sha256: str,
    data: bytes,
    filename: str,
    actor: str,
    now,
) -> int | None:
    """Insert the statement row; None when these bytes are stored already."""
    table = Statement.__table__
    return session.execute(
        insert_ignoring_conflicts(session, table, ["sha256"])
        .values(
            sha256=sha256,
            filename=filename[:255],
            format=parsed.format,
            content=data,
            bank_account=_stored(parsed.account.strip(), _MAX_ACCOUNT),
            uploaded_by=actor,
            uploaded_at=now,
            lines_total=len(parsed.lines),
            lines_new=0,
        )
        .returning(table.c.id)
    ).scalar_one_or_none()


def _store_lines(
    session: Session, statement_id: int, parsed: ParsedStatement, keys: list[str], now
) -> dict[str, int]:
    """Insert the lines not stored before, classified; credit the matched ones."""
    codes = reconcile.load_code_index(session)
    payers = reconcile.load_payer_index(session)
    decisions = classify_all(map(reconcile.facts, parsed.lines), codes, payers)
    bank_account = _stored(parsed.account.strip(), _MAX_ACCOUNT)
    rows = []
    for line, key, decision in zip(parsed.lines, keys, decisions):
        matched = decision.status == MATCHED
        rows.append(
            {
                "statement_id": statement_id,
                "bank_account": bank_account,
                "identity_key": key,
                "line_no": line.line_no,
                "raw": line.raw,
                "transaction_id": line.transaction_id,
                "booked_at": line.booked_at.isoformat(),
                "amount_fen": line.amount_fen,
                "currency": line.currency,
                "direction": line.direction,
                "counterparty_name": line.counterparty_name,
                "counterparty_account": line.counterparty_account,
                "memo": line.memo,
                "reference": line.reference,
                "booked": line.booked,
                "reversal": line.reversal,
                "status": decision.status,
                "account_id": decision.account_id,
                "suggested_account_id": decision.suggested_account_id,
                "reason": decision.reason,
                "credits": 1 if matched else 0,
                "matched_by": reconcile.RECONCILER if matched else None,
                "matched_at": now if matched else None,
            }
        )
    table = StatementLine.__table__
    if rows:
        session.execute(
            insert_ignoring_conflicts(session, table, ["bank_account", "identity_key"]), rows
        )
    # What this statement added is exactly the rows carrying its id.
    matched = session.execute(
        select(table.c.id, table.c.account_id, table.c.amount_fen, table.c.reason)
        .where(table.c.statement_id == statement_id, table.c.status == MATCHED)
        .order_by(table.c.line_no, table.c.id)
    ).all()
    reconcile.credit_lines(session, now, [reconcile.MatchedLine(*row) for row in matched])
    counts = Counter(
        dict(
            session.execute(
                select(table.c.status, func.count())
                .where(table.c.statement_id == statement_id)
                .group_by(table.c.status)
            ).all()
        )
    )
    session.execute(
        update(Statement.__table__)
        .where(Statement.__table__.c.id == statement_id)
        .values(lines_new=sum(counts.values()))
    )
    return dict(counts)


def _stored(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
