"""Importing a bank statement file: store it and its new lines, reconcile them, in one go.

One file is one transaction: its statement row, its new lines, their classification and the
credits of matched lines commit together or not at all. The same bytes again add nothing
(a unique SHA-256); an overlapping statement adds only the lines not stored before (a
unique identity key per bank account, inserted with ``ON CONFLICT DO NOTHING``).
"""
from __future__ import annotations

import datetime
import gc
import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.bulk import allocate_ids, copy_rows, existing_values, insert_ignoring_conflicts, update_rows
from ..adapters.db.errors import LostRaces
from ..adapters.db.models import Statement, StatementLine
from ..adapters.statements import parse_statement
from ..domain.errors import BalanceLimit, StatementRejected
from ..domain.matching import MATCHED, CodeIndex, Decision, classify_each
from ..domain.statements import ParsedStatement, line_identities
from . import reconcile
from .clock import Clock

log = logging.getLogger(__name__)

MAX_STATEMENT_BYTES = 20 * 1024 * 1024
# Longer identity keys (a bank id of hundreds of characters) are stored as their hash, so
# that the unique index stays small; the mapping is fixed, like the identity scheme itself.
_MAX_KEY = 200
_MAX_ACCOUNT = 100
_ATTEMPTS = 3


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
    with _collector_paused():
        return _import(db, clock, data, filename, format, actor)


def _import(
    db: Database, clock: Clock, data: bytes, filename: str, format: str, actor: str
) -> ImportResult:
    sha256 = hashlib.sha256(data).hexdigest()
    known = _known_statement(db, sha256)
    if known is not None:
        return known
    parsed = parse_statement(data, format)
    _check_one_account(parsed)
    # The line identities are client work and the statement row's insert (the file's bytes)
    # server work: a second thread computes the one while this one waits on the other.
    with ThreadPoolExecutor(max_workers=1) as worker:
        identities = worker.submit(_line_keys, parsed)
        races, hold_past_limit = 0, False
        while True:
            now = clock.now()
            try:
                with db.transaction() as session:
                    statement_id = _insert_statement(
                        session, parsed, sha256, data, filename, actor, now
                    )
                    if statement_id is not None:
                        counts = _store_lines(
                            session, worker, statement_id, parsed, identities, now,
                            hold_past_limit=hold_past_limit,
                        )
                break
            except BalanceLimit:
                # A line would take its account past the most a balance holds, and the file
                # rolled back whole: again, with such lines left to finance (once; this is
                # no race, so it does not count as one).
                if hold_past_limit:
                    raise
                hold_past_limit = True
            except (IntegrityError, OperationalError) as exc:
                # An overlapping statement imported at the same moment stored some of these
                # lines first (the unique identity refused ours), or the two deadlocked: the
                # whole file rolled back; again, its lines are found stored and skipped.
                if not _is_race(exc):
                    raise
                races += 1
                if races == _ATTEMPTS:
                    raise LostRaces(f"the import lost to overlapping imports {races} times") from exc
                log.info(
                    "statement import raced another import; retrying", extra={"attempt": races}
                )
    if statement_id is None:
        return _known_statement(db, sha256)  # a concurrent import of these bytes came first
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


def _check_one_account(parsed: ParsedStatement) -> None:
    """Refuse a file whose statements state different bank accounts.

    Line identities are unique per bank account, and a file's lines are stored under its one
    account: the lines of a file with several would share no scope with those of the
    accounts' own statements, and a transfer in both would be imported, and credited, twice.
    """
    first = parsed.accounts[0][0] if parsed.accounts else ""
    for number, line in parsed.accounts[1:]:
        if number != first:
            raise StatementRejected(
                f"statements of two bank accounts in one file ({first!r} and {number!r});"
                " import each account's statements as a file of its own",
                line=line,
            )


def _line_keys(parsed: ParsedStatement) -> list[str]:
    return [_stored(key, _MAX_KEY) for key in line_identities(parsed.lines)]


_pause_lock = threading.Lock()
_pauses = 0  # imports running in this process with the collector paused
_resume = False  # whether the collector was enabled when the first of them paused it


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an import runs.

    A large file's parsed lines, keys and rows (millions of objects) all live until the import
    ends and form no reference cycles, yet each full collection walks every one of them again:
    for 100,000 lines that was six full collections and about 0.7 s of a 3.2 s import's CPU.
    Reference counting still frees everything as usual. The collector is process-wide, so
    overlapping imports (threads of one worker) count: the last one out resumes it.
    """
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()


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


_LINE_COLUMNS = (
    "id",
    "statement_id",
    "bank_account",
    "identity_key",
    "line_no",
    "raw",
    "transaction_id",
    "booked_at",
    "amount_fen",
    "currency",
    "direction",
    "counterparty_name",
    "counterparty_account",
    "memo",
    "reference",
    "booked",
    "reversal",
    *reconcile.OUTCOME_COLUMNS,
)


def _store_lines(
    session: Session,
    worker: Executor,
    statement_id: int,
    parsed: ParsedStatement,
    identities: Future[list[str]],
    now,
    *,
    hold_past_limit: bool = False,
) -> dict[str, int]:
    """Insert the lines not stored before, classified; credit the matched ones.

    ``identities`` are the lines' keys, computed on ``worker``; the code index and the lines'
    times as stored are made there too, while this thread waits on the server's look-up of
    stored lines and ids. With ``hold_past_limit``, a matched line whose credit would take
    its account past the balance limit is stored as an exception instead, uncredited.
    """
    table = StatementLine.__table__
    bank_account = _stored(parsed.account.strip(), _MAX_ACCOUNT)
    code_index = worker.submit(CodeIndex, reconcile.issued_codes(session))
    booked_at = worker.submit(lambda: [_booked_at(line.booked_at) for line in parsed.lines])
    payers = reconcile.load_payer_index(session)
    keys = identities.result()
    stored = existing_values(session, table, "identity_key", keys, bank_account=bank_account)
    # The keys of one file are distinct, and ``stored`` holds some of them.
    ids = allocate_ids(session, table, len(keys) - len(stored))
    new = [
        (line, key, booked)
        for line, key, booked in zip(parsed.lines, keys, booked_at.result())
        if key not in stored
    ]
    if len(new) != len(ids):
        raise ValueError("the lines' identity keys are not distinct")
    codes = code_index.result()
    decisions: list[Decision] = []

    def rows():
        # Lines are classified while COPY streams them: the client's matching overlaps the
        # server's inserting.
        classified = classify_each((line for line, _key, _booked in new), codes, payers)
        for line_id, (line, key, booked), decision in zip(ids, new, classified):
            decisions.append(decision)
            yield (
                line_id,
                statement_id,
                bank_account,
                key,
                line.line_no,
                line.raw,
                line.transaction_id,
                booked,
                line.amount_fen,
                line.currency,
                line.direction,
                line.counterparty_name,
                line.counterparty_account,
                line.memo,
                line.reference,
                line.booked,
                line.reversal,
                *reconcile.outcome(decision, now),
            )

    copy_rows(session, table, _LINE_COLUMNS, rows())
    if hold_past_limit:
        decisions = _hold_past_limit(session, table, ids, new, decisions, now)
    matched = [decision for decision in decisions if decision.status == MATCHED]
    # In file order, so that arrears are paid off line by line as the money came in; built
    # as the ledger streams them.
    reconcile.credit_new_lines(
        session,
        now,
        (
            reconcile.MatchedLine(line_id, decision.account_id, line.amount_fen, decision.reason)
            for line_id, (line, _key, _booked), decision in zip(ids, new, decisions)
            if decision.status == MATCHED
        ),
        count=len(matched),
        account_ids={decision.account_id for decision in matched},
    )
    session.execute(
        update(Statement.__table__)
        .where(Statement.__table__.c.id == statement_id)
        .values(lines_new=len(new))
    )
    return dict(Counter(decision.status for decision in decisions))


def _hold_past_limit(session: Session, table, ids, new, decisions: list[Decision], now) -> list[Decision]:
    """Turn matched lines whose credit would pass the balance limit into exceptions, stored so."""
    decisions, held = reconcile.hold_lines_past_limit(
        session, ids, [line.amount_fen for line, _key, _booked in new], decisions
    )
    if held:
        update_rows(
            session,
            table,
            "id",
            reconcile.OUTCOME_COLUMNS,
            (
                (line_id, *reconcile.outcome(decision, now))
                for line_id, decision in zip(ids, decisions)
                if line_id in held
            ),
        )
    return decisions


def _is_race(exc: Exception) -> bool:
    # PostgreSQL: unique violation, deadlock detected, serialization failure. SQLite has no
    # such races: its write transactions hold the database lock from BEGIN.
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("23505", "40P01", "40001")


# Bank exports without an offset state China Standard Time, the time of the CNY accounts
# reconciled here; API timestamps carry an offset.
_BANK_TIME = datetime.timezone(datetime.timedelta(hours=8))


def _booked_at(value: datetime.date | datetime.datetime) -> str:
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=_BANK_TIME)
    return value.isoformat()  # a date stays a date: no invented time of day


def _stored(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
