"""The reconciler: classify statement lines in memory and credit matched ones in bulk.

Set-based: the issued codes and known payers are loaded once per run into indexes, lines are
classified in memory, and the writes (line statuses, ledger credits) go out in batches; never
a query per line.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.bulk import update_rows
from ..adapters.db.models import Account, StatementLine
from ..domain.errors import BalanceLimit
from ..domain.matching import (
    EXCEPTION,
    MATCHED,
    UNMATCHED,
    CodeIndex,
    Decision,
    PayerIndex,
    classify_all,
)
from . import ledger
from .clock import Clock

log = logging.getLogger(__name__)

RECONCILER = "reconciler"  # matched_by of automatic matches
LEDGER_KIND = "topup_bank"
REVERSAL_KIND = "topup_bank_reversal"
STATUSES = ("matched", "suggested", "unmatched", "ignored", "exception")
_BATCH = 5000


def credit_key(line_id: int, credit_number: int) -> str:
    """Return the ledger key of a line's n-th credit: ``bank:<id>``, then ``bank:<id>:<n>``."""
    return f"bank:{line_id}" if credit_number == 1 else f"bank:{line_id}:{credit_number}"


def undo_key(line_id: int, credit_number: int) -> str:
    """Return the ledger key of the reversal of a line's n-th credit."""
    return f"bank:{line_id}:undo:{credit_number}"


class MatchedLine(NamedTuple):
    """A line to credit: its id, the account, the amount and why it matched."""

    id: int
    account_id: str
    amount_fen: int
    reason: str


# A line's columns that say what it is, in the order ``outcome`` gives them.
OUTCOME_COLUMNS = (
    "status",
    "account_id",
    "suggested_account_id",
    "reason",
    "credits",
    "matched_by",
    "matched_at",
)


def outcome(decision: Decision, now: datetime) -> tuple:
    """Return a line's ``OUTCOME_COLUMNS`` for an automatic decision."""
    matched = decision.status == MATCHED
    return (
        decision.status,
        decision.account_id,
        decision.suggested_account_id,
        decision.reason,
        1 if matched else 0,  # credits: an automatic match is the line's first credit
        RECONCILER if matched else None,
        now if matched else None,
    )


def load_code_index(session: Session) -> CodeIndex:
    """Load every issued remittance code, once per run."""
    return CodeIndex(issued_codes(session))


def issued_codes(session: Session) -> dict[str, str]:
    """Return every issued remittance code and its account id."""
    return dict(session.execute(select(Account.remittance_code, Account.id)).all())


def load_payer_index(session: Session) -> PayerIndex:
    """Load the payer accounts of confirmed matches, once per run."""
    rows = session.execute(
        select(StatementLine.counterparty_account, StatementLine.account_id)
        .where(StatementLine.status == MATCHED, StatementLine.counterparty_account != "")
        .distinct()
    )
    return PayerIndex(rows.all())


def _first_credit(line: MatchedLine) -> ledger.TopupCredit:
    """A matched line's first credit: its amount to its account, under ``bank:<line id>``."""
    return ledger.TopupCredit(
        account_id=line.account_id,
        amount_fen=line.amount_fen,
        key=credit_key(line.id, 1),
        reference=f"statement_line:{line.id}",
        memo=line.reason,
    )


def credit_lines(session: Session, now: datetime, lines: Iterable[MatchedLine]) -> int:
    """Credit matched lines in bulk and return how many were credited.

    Each is a line's first credit, under ``bank:<line id>``; arrears first, in the order given.
    """
    credits = [_first_credit(line) for line in lines]
    credited = ledger.credit_topups_bulk(
        session, credits, kind=LEDGER_KIND, now=now, actor=RECONCILER
    )
    if len(credited) != len(credits):
        # The line lock keeps these lines uncredited; a recorded key means a bug.
        log.error(
            "bank credit already recorded for a line being matched",
            extra={"expected": len(credits), "credited": len(credited)},
        )
    return len(credited)


def credit_new_lines(
    session: Session,
    now: datetime,
    lines: Iterable[MatchedLine],
    *,
    count: int,
    account_ids: Iterable[str],
) -> None:
    """Credit matched lines inserted in this transaction, as ``credit_lines`` credits them.

    Their ids were just drawn from the lines' sequence, so no ledger transaction can hold
    their keys yet: the ledger skips the probe for recorded keys. ``lines`` (``count`` of
    them, on ``account_ids``) is iterated once, while the ledger streams its rows.
    """
    ledger.credit_new_topups_bulk(
        session,
        (_first_credit(line) for line in lines),
        count=count,
        account_ids=account_ids,
        kind=LEDGER_KIND,
        now=now,
        actor=RECONCILER,
    )


_QUEUE_COLUMNS = (
    StatementLine.id,
    StatementLine.status,
    StatementLine.suggested_account_id,
    StatementLine.reason,
    StatementLine.amount_fen,
    StatementLine.booked,
    StatementLine.reversal,
    StatementLine.direction,
    StatementLine.currency,
    StatementLine.memo,
    StatementLine.reference,
    StatementLine.counterparty_account,
)


def reconcile(db: Database, clock: Clock) -> dict[str, int]:
    """Classify every line waiting in the unmatched queue; credit those that match.

    Only lines never credited are taken: a line whose match finance undid stays with
    finance. Batches are claimed with ``SKIP LOCKED``, so runs on several hosts share the
    work and never classify one line twice at once.
    """
    with db.sessions() as session:
        codes = load_code_index(session)
        payers = load_payer_index(session)
    counts: Counter[str] = Counter({status: 0 for status in STATUSES})
    after = 0
    while True:
        try:
            batch = _reconcile_batch(db, clock, after, codes, payers, hold_past_limit=False)
        except BalanceLimit:
            # A line would take its account past the most a balance holds, and the batch
            # rolled back whole: again, with such lines left to finance, holding up no other.
            batch = _reconcile_batch(db, clock, after, codes, payers, hold_past_limit=True)
        if batch is None:
            break
        after, decisions = batch
        counts.update(decision.status for decision in decisions)
    counts["lines"] = sum(counts[status] for status in STATUSES)
    log.info("reconcile run finished", extra=dict(counts))
    return dict(counts)


def _reconcile_batch(
    db: Database, clock: Clock, after: int, codes: CodeIndex, payers: PayerIndex, *, hold_past_limit: bool
) -> tuple[int, list[Decision]] | None:
    """Classify and credit the next batch of the queue after line ``after``; None when it is empty.

    Returns the batch's last line id and its decisions. With ``hold_past_limit``, a matched
    line whose credit would take its account past the balance limit becomes an exception.
    """
    with db.transaction() as session:
        rows = session.execute(
            select(*_QUEUE_COLUMNS)
            .where(
                StatementLine.status == UNMATCHED,
                StatementLine.credits == 0,
                StatementLine.id > after,
            )
            .order_by(StatementLine.id)
            .limit(_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return None
        decisions = classify_all(rows, codes, payers)
        if hold_past_limit:
            decisions, _ = hold_lines_past_limit(
                session, [row.id for row in rows], [row.amount_fen for row in rows], decisions
            )
        _apply(session, clock.now(), rows, decisions)
    return rows[-1].id, decisions


def hold_lines_past_limit(
    session: Session, ids: Sequence[int], amounts: Sequence[int], decisions: Sequence[Decision]
) -> tuple[list[Decision], set[int]]:
    """Turn each matched line whose credit would take its account past the balance limit into
    an exception; return the lines' decisions and the ids of those held.

    The lines (``ids``, their ``amounts`` and ``decisions``, in order) are weighed in that order,
    as ``credit_lines`` credits them; the accounts stay locked, so crediting the other matched
    lines in this transaction then succeeds.
    """
    matched = [
        MatchedLine(line_id, decision.account_id, amount, decision.reason)
        for line_id, amount, decision in zip(ids, amounts, decisions)
        if decision.status == MATCHED
    ]
    refused = ledger.credits_past_limit(session, [_first_credit(line) for line in matched])
    held = {line.id for line in matched if credit_key(line.id, 1) in refused}
    return [_held_decision(decision) if line_id in held else decision for line_id, decision in zip(ids, decisions)], held


def _held_decision(decision: Decision) -> Decision:
    """The exception a matched line becomes when its credit would pass the balance limit."""
    return Decision(
        EXCEPTION,
        reason=f"{decision.reason}; crediting account {decision.account_id} would take its"
        " balance past the most a balance holds: finance decides",
    )


def _apply(session: Session, now: datetime, rows, decisions) -> None:
    changed = [
        (row, decision)
        for row, decision in zip(rows, decisions)
        if (decision.status, decision.suggested_account_id, decision.reason)
        != (row.status, row.suggested_account_id, row.reason)
    ]
    if not changed:
        return
    update_rows(
        session,
        StatementLine.__table__,
        "id",
        OUTCOME_COLUMNS,
        ((row.id, *outcome(decision, now)) for row, decision in changed),
    )
    credit_lines(
        session,
        now,
        [
            MatchedLine(row.id, decision.account_id, row.amount_fen, decision.reason)
            for row, decision in changed
            if decision.status == MATCHED
        ],
    )
