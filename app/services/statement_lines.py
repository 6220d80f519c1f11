"""Finance's work on statement lines: the queues, a match by hand, and its undo.

A manual match credits the line like an automatic one (arrears first). An undo is a reversing
ledger entry, never a deletion: it takes the amount back from cash, and what was spent
already becomes arrears again. Every manual action is recorded with its actor and reason.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.models import StatementLine, StatementLineAction
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..domain.matching import CNY, MATCHED, UNMATCHED
from ..domain.statements import IN
from . import ledger
from .clock import Clock
from .reconcile import LEDGER_KIND, REVERSAL_KIND, credit_key, undo_key

log = logging.getLogger(__name__)

# What the account's own ledger says of a manual match and of its undo. Finance's reason is
# kept with the line and its recorded action, never in the customer's ledger: it is an
# internal note, and an undo's reason often names whoever the money really belonged to.
MATCHED_BY_HAND_MEMO = "bank transfer, matched by finance"
UNDONE_MEMO = "bank transfer credited in error, taken back by finance"


@dataclass(frozen=True)
class LineView:
    id: int
    statement_id: int
    booked_at: str
    amount_fen: int
    currency: str
    direction: str
    counterparty_name: str
    counterparty_account: str
    memo: str
    status: str
    account_id: str | None
    suggested_account_id: str | None
    reason: str


def _view(line: StatementLine) -> LineView:
    return LineView(
        id=line.id,
        statement_id=line.statement_id,
        booked_at=line.booked_at,
        amount_fen=line.amount_fen,
        currency=line.currency,
        direction=line.direction,
        counterparty_name=line.counterparty_name,
        counterparty_account=line.counterparty_account,
        memo=line.memo,
        status=line.status,
        account_id=line.account_id,
        suggested_account_id=line.suggested_account_id,
        reason=line.reason,
    )


def list_lines(
    db: Database, *, status: str | None, after_id: int | None, limit: int
) -> tuple[list[LineView], int | None]:
    """Return a page of lines, oldest first, and the id to continue after (or None)."""
    query = select(StatementLine).order_by(StatementLine.id).limit(limit + 1)
    if status is not None:
        query = query.where(StatementLine.status == status)
    if after_id is not None:
        query = query.where(StatementLine.id > after_id)
    with db.sessions() as session:
        lines = session.execute(query).scalars().all()
    page = [_view(line) for line in lines[:limit]]
    return page, (page[-1].id if len(lines) > limit else None)


def _lock_line(session: Session, line_id: int) -> StatementLine:
    line = session.execute(
        select(StatementLine).where(StatementLine.id == line_id).with_for_update()
    ).scalar_one_or_none()
    if line is None:
        raise NotFound(f"statement line {line_id} does not exist", code="line_not_found")
    return line


def match_line(
    db: Database, clock: Clock, *, line_id: int, account_id: str, reason: str, actor: str
) -> LineView:
    """Match a line to an account by hand and credit it (arrears first)."""
    now = clock.now()
    with db.transaction() as session:
        line = _lock_line(session, line_id)
        if line.status == MATCHED:
            raise Conflict(
                f"line {line_id} is matched to account {line.account_id} already; unmatch it first",
                code="line_already_matched",
            )
        if line.direction != IN:
            raise Conflict(f"line {line_id} is an outgoing transfer", code="line_outgoing")
        if not line.booked:
            raise Conflict(f"line {line_id} is not booked by the bank", code="line_not_booked")
        if line.currency != CNY:
            raise Conflict(
                f"line {line_id} is in {line.currency}, not CNY; it cannot be credited",
                code="line_not_cny",
            )
        try:
            account = ledger.lock_account(session, account_id)
        except NotFound as exc:
            raise InvalidInput(exc.detail, code="account_not_found", field="account_id") from None
        line.credits += 1
        key = credit_key(line.id, line.credits)
        ledger.credit_topup(
            session,
            account,
            amount_fen=line.amount_fen,
            key=key,
            kind=LEDGER_KIND,
            now=now,
            reference=f"statement_line:{line.id}",
            memo=MATCHED_BY_HAND_MEMO,
            actor=actor,
        )
        line.status, line.account_id, line.reason = MATCHED, account.id, reason
        line.matched_by, line.matched_at = actor, now
        session.add(_action(line, "match", account.id, key, actor, reason, now))
        view = _view(line)
    log.info(
        "statement line matched by hand",
        extra={"line_id": line_id, "account_id": account_id, "actor": actor},
    )
    return view


def unmatch_line(db: Database, clock: Clock, *, line_id: int, reason: str, actor: str) -> LineView:
    """Undo a line's match with a reversing entry; spent cash becomes arrears again.

    The part that becomes arrears was spent (on bills, or on arrears this credit paid off)
    and counted invoiceable then; it stops being invoiceable until it is paid again.
    """
    now = clock.now()
    with db.transaction() as session:
        line = _lock_line(session, line_id)
        if line.status != MATCHED:
            raise Conflict(f"line {line_id} is not matched", code="line_not_matched")
        account = ledger.lock_account(session, line.account_id)
        taken = min(account.cash_fen, line.amount_fen)
        owed = line.amount_fen - taken
        key = undo_key(line.id, line.credits)
        ledger.record(
            session,
            account,
            key=key,
            kind=REVERSAL_KIND,
            now=now,
            reference=f"statement_line:{line.id}",
            memo=UNDONE_MEMO,
            actor=actor,
            postings=[
                ledger.Posting("cash", -taken),
                ledger.Posting("arrears", owed),
                ledger.Posting("invoiceable", -min(owed, account.invoiceable_fen)),
            ],
        )
        session.add(_action(line, "unmatch", account.id, key, actor, reason, now))
        line.status, line.account_id, line.reason = UNMATCHED, None, reason
        line.matched_by, line.matched_at = None, None
        view = _view(line)
    log.info(
        "statement line match undone",
        extra={"line_id": line_id, "account_id": account.id, "actor": actor, "arrears_fen": owed},
    )
    return view


def _action(line, action, account_id, key, actor, reason, now) -> StatementLineAction:
    return StatementLineAction(
        line_id=line.id,
        action=action,
        account_id=account_id,
        ledger_key=key,
        actor=actor,
        reason=reason,
        at=now,
    )
