"""The append-only ledger: every balance change is an entry under a unique idempotency key.

The unique key on ``ledger_transactions`` is what makes a credit happen once; the account row
lock only keeps the cached balances consistent with the entries.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import String, case, cast, exists, func, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from ..adapters.db.bulk import allocate_ids, copy_rows, existing_values, one_of, update_rows
from ..adapters.db.types import fen_sum_parts, fen_total
from ..adapters.db.models import (
    UNIT_MODELS,
    Account,
    CloudCharge,
    LedgerEntry,
    LedgerTransaction,
    Statement,
    StatementLine,
    TopupOrder,
)
from ..domain.errors import AccountNotFound, InsufficientFunds
from ..domain.money import MAX_BALANCE_FEN, check_balance, format_fen
from ..domain.topup import TopupSplit, split_topup

log = logging.getLogger(__name__)

ACCOUNT_BUCKETS = {"cash": "cash_fen", "arrears": "arrears_fen", "invoiceable": "invoiceable_fen"}


class AlreadyRecorded(Exception):
    """A movement with this idempotency key exists already."""


@dataclass(frozen=True)
class Posting:
    """One signed change: ``unit`` is the coupon or prepaid card row for unit buckets."""

    bucket: str
    amount_fen: int
    unit: object | None = field(default=None, compare=False)


def lock_account(session: Session, account_id: str) -> Account:
    """Load an account and lock its row until the transaction ends."""
    account = session.execute(
        select(Account).where(Account.id == account_id).with_for_update()
    ).scalar_one_or_none()
    if account is None:
        raise AccountNotFound(account_id)
    return account


def is_recorded(session: Session, key: str) -> bool:
    """Tell whether a movement with idempotency ``key`` has been recorded."""
    return (
        session.execute(
            select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == key)
        ).first()
        is not None
    )


def reference_of(session: Session, key: str) -> str | None:
    """The reference of the movement recorded under ``key``; None when there is none."""
    return session.scalar(select(LedgerTransaction.reference).where(LedgerTransaction.idempotency_key == key))


def record(
    session: Session,
    account: Account,
    *,
    key: str,
    kind: str,
    postings: list[Posting],
    now: datetime,
    reference: str = "",
    memo: str = "",
    actor: str = "",
) -> LedgerTransaction:
    """Write one money movement: its transaction row, its entries and the cached balances.

    The caller holds the account's row lock (``lock_account``) and the units' locks. Raises
    ``AlreadyRecorded`` when ``key`` was used before; the caller's transaction must then be
    rolled back, since the flush failed inside it.
    """
    txn = LedgerTransaction(
        idempotency_key=key,
        account_id=account.id,
        kind=kind,
        reference=reference,
        memo=memo,
        actor=actor,
        created_at=now,
    )
    try:
        # Added inside the savepoint, so a duplicate key rolls back only the savepoint and the
        # caller's transaction stays usable.
        with session.begin_nested():
            session.add(txn)
            session.flush()
    except IntegrityError as exc:
        raise AlreadyRecorded(key) from exc

    entries = []
    for index, posting in enumerate(p for p in postings if p.amount_fen):
        balance_after = _apply(account, posting)
        unit_id = getattr(posting.unit, "id", None)
        entries.append(
            LedgerEntry(
                transaction_id=txn.id,
                idempotency_key=entry_key(key, index, posting.bucket, unit_id),
                account_id=account.id,
                bucket=posting.bucket,
                unit_id=unit_id,
                amount_fen=posting.amount_fen,
                balance_after_fen=balance_after,
                created_at=now,
            )
        )
    session.add_all(entries)
    return txn


def entry_key(key: str, index: int, bucket: str, unit_id: int | None = None) -> str:
    """The idempotency key of a transaction's ``index``-th entry (one format for every writer)."""
    return f"{key}/{index}:{bucket}" + (f":{unit_id}" if unit_id is not None else "")


def _apply(account: Account, posting: Posting) -> int:
    if posting.bucket in ACCOUNT_BUCKETS:
        if posting.unit is not None:
            raise ValueError(f"bucket {posting.bucket} takes no unit")
        attr = ACCOUNT_BUCKETS[posting.bucket]
        new = check_balance(getattr(account, attr) + posting.amount_fen, posting.bucket)
        if new < 0:
            raise InsufficientFunds(f"{posting.bucket} would go below zero")
        setattr(account, attr, new)
        return new
    if posting.bucket not in UNIT_MODELS or posting.unit is None:
        raise ValueError(f"bucket {posting.bucket} needs a unit")
    if posting.unit.account_id != account.id:
        raise ValueError("a unit moves only on its own account")
    new = posting.unit.balance_fen + posting.amount_fen
    if new < 0:
        raise InsufficientFunds(f"{posting.bucket} {posting.unit.id} would go below zero")
    posting.unit.balance_fen = new
    return new


def credit_topup(
    session: Session,
    account: Account,
    *,
    amount_fen: int,
    key: str,
    kind: str,
    now: datetime,
    reference: str = "",
    memo: str = "",
    actor: str = "",
) -> TopupSplit:
    """Credit a top-up: arrears are paid off first (and become invoiceable), the rest is cash."""
    split = split_topup(amount_fen, account.arrears_fen)
    record(
        session,
        account,
        key=key,
        kind=kind,
        now=now,
        reference=reference,
        memo=memo,
        actor=actor,
        postings=_topup_postings(split),
    )
    return split


def _topup_postings(split: TopupSplit) -> list[Posting]:
    return [
        Posting("arrears", -split.arrears_paid_fen),
        Posting("invoiceable", split.arrears_paid_fen),
        Posting("cash", split.cash_fen),
    ]


class TopupCredit(NamedTuple):
    """One top-up for ``credit_topups_bulk`` (a tuple: bulk callers build tens of thousands)."""

    account_id: str
    amount_fen: int
    key: str
    reference: str = ""
    memo: str = ""


# Bound parameters per statement stay far below PostgreSQL's 65,535.
_LOCK_CHUNK = 5000


def credit_topups_bulk(
    session: Session,
    credits: Sequence[TopupCredit],
    *,
    kind: str,
    now: datetime,
    actor: str = "",
) -> set[str]:
    """Credit many top-ups with a few set-based statements; return the keys credited now.

    Each credit is booked as ``credit_topup`` would book it, in the order given: arrears are
    paid off first (and become invoiceable), the rest is cash; its transaction and entries
    carry its own idempotency key. The touched accounts are locked first, in id order, by one
    ``SELECT ... FOR NO KEY UPDATE``; a key recorded before (seen under those locks) is then
    skipped, and the unique key stops anything that slips past. Cached balances are written
    once per account. The session must hold no ORM copies of these accounts: the balance
    update goes around the identity map.
    """
    if not credits:
        return set()
    keys = [credit.key for credit in credits]
    if len(set(keys)) != len(keys):
        raise ValueError("a bulk credit names one idempotency key twice")
    balances = _lock_balances(session, sorted({credit.account_id for credit in credits}))
    txns = LedgerTransaction.__table__
    recorded = existing_values(session, txns, "idempotency_key", keys)
    todo = [credit for credit in credits if credit.key not in recorded]
    _book_topups(session, todo, len(todo), balances, kind=kind, now=now, actor=actor)
    return {credit.key for credit in todo}


def credit_new_topups_bulk(
    session: Session,
    credits: Iterable[TopupCredit],
    *,
    count: int,
    account_ids: Iterable[str],
    kind: str,
    now: datetime,
    actor: str = "",
) -> None:
    """Credit ``count`` top-ups whose keys no transaction can hold yet, as ``credit_topups_bulk``.

    For keys made of ids drawn from a sequence in this same transaction: no other transaction
    can have recorded them, so the probe for recorded keys (server work for every key) is
    left out. The unique key still refuses a duplicate; the caller's transaction then fails
    and must roll back whole. ``credits`` is iterated once, in order, while the transaction
    rows stream: building them overlaps the server's inserting. ``account_ids`` names every
    account the credits touch (they are locked before anything is written).
    """
    if count <= 0:
        return
    balances = _lock_balances(session, sorted(set(account_ids)))
    _book_topups(session, credits, count, balances, kind=kind, now=now, actor=actor)


def credits_past_limit(session: Session, credits: Sequence[TopupCredit]) -> set[str]:
    """Return the keys of the credits that would take a balance past ``MAX_BALANCE_FEN``.

    The credits are weighed in the order given, as ``credit_topups_bulk`` books them (arrears
    first, the rest cash), each against the balances the ones before it that fit have left;
    one that does not fit moves nothing. Their accounts are locked as that function locks them,
    so the answer holds for the rest of the transaction: crediting the others then succeeds.
    """
    balances = _lock_balances(session, sorted({credit.account_id for credit in credits}))
    refused: set[str] = set()
    for credit in credits:
        balance = balances[credit.account_id]
        split = split_topup(credit.amount_fen, balance["arrears"])
        invoiceable = balance["invoiceable"] + split.arrears_paid_fen
        cash = balance["cash"] + split.cash_fen
        if invoiceable > MAX_BALANCE_FEN or cash > MAX_BALANCE_FEN:
            refused.add(credit.key)
            continue
        balance["arrears"] -= split.arrears_paid_fen
        balance["invoiceable"], balance["cash"] = invoiceable, cash
    return refused


_TXN_COLUMNS = ("id", "idempotency_key", "account_id", "kind", "reference", "memo", "actor", "created_at")


def _book_topups(
    session: Session,
    credits: Iterable[TopupCredit],
    count: int,
    balances: dict[str, dict[str, int]],
    *,
    kind: str,
    now: datetime,
    actor: str,
) -> None:
    """Write ``count`` credits' transactions, entries and the cached balances they move."""
    txn_ids = allocate_ids(session, LedgerTransaction.__table__, count)
    remaining = iter(credits)
    booked: list[TopupCredit] = []

    def txn_rows():
        # zip stops at the last id without taking another credit: one left over shows below.
        for txn_id, credit in zip(txn_ids, remaining):
            booked.append(credit)
            yield (txn_id, credit.key, credit.account_id, kind, credit.reference, credit.memo, actor, now)

    copy_rows(session, LedgerTransaction.__table__, _TXN_COLUMNS, txn_rows())
    if len(booked) != count or next(remaining, None) is not None:
        raise ValueError(f"{count} credits were counted, but not as many were given")
    copy_rows(session, LedgerEntry.__table__, _ENTRY_COLUMNS, _topup_entries(booked, txn_ids, balances, now))
    update_rows(
        session,
        Account.__table__,
        "id",
        ("cash_fen", "arrears_fen", "invoiceable_fen"),
        (
            (a, balances[a]["cash"], balances[a]["arrears"], balances[a]["invoiceable"])
            for a in sorted({credit.account_id for credit in booked})
        ),
    )


_ENTRY_COLUMNS = (
    "transaction_id",
    "idempotency_key",
    "account_id",
    "bucket",
    "amount_fen",
    "balance_after_fen",
    "created_at",
)


def _topup_entries(credits, txn_ids, balances, now):
    """Yield the entry rows of the credits in order, moving ``balances`` as they go.

    The rows ``credit_topup`` writes (arrears paid off, made invoiceable, the rest cash; no
    zero entries; keys by ``entry_key`` like ``record``'s), spelled out: building postings for each
    of 70,000 credits took a fifth of a second.
    """
    for credit, txn_id in zip(credits, txn_ids):
        key, account_id, amount = credit.key, credit.account_id, credit.amount_fen
        balance = balances[account_id]
        if balance["arrears"] > 0 or amount <= 0:
            split = split_topup(amount, balance["arrears"])  # refuses a non-positive amount
            paid, cash = split.arrears_paid_fen, split.cash_fen
        else:
            paid, cash = 0, amount  # nothing owed: all of it is cash
        index = 0
        if paid:
            balance["arrears"] -= paid
            yield (txn_id, entry_key(key, 0, "arrears"), account_id, "arrears", -paid, balance["arrears"], now)
            balance["invoiceable"] = check_balance(balance["invoiceable"] + paid, "invoiceable")
            yield (txn_id, entry_key(key, 1, "invoiceable"), account_id, "invoiceable", paid, balance["invoiceable"], now)
            index = 2
        if cash:
            balance["cash"] = check_balance(balance["cash"] + cash, "cash")
            yield (txn_id, entry_key(key, index, "cash"), account_id, "cash", cash, balance["cash"], now)


def _lock_balances(session: Session, account_ids: list[str]) -> dict[str, dict[str, int]]:
    """Lock accounts in id order and return their account-level balances by bucket."""
    accounts = Account.__table__
    c = accounts.c
    columns = (c.id, c.cash_fen, c.arrears_fen, c.invoiceable_fen)
    balances: dict[str, dict[str, int]] = {}
    for start in range(0, len(account_ids), _LOCK_CHUNK):
        rows = session.execute(
            select(*columns)
            .where(one_of(session, c.id, account_ids[start : start + _LOCK_CHUNK]))
            .order_by(accounts.c.id)
            # FOR NO KEY UPDATE: the balance update changes no key, and this mode does not
            # conflict with the KEY SHARE locks that foreign-key checks take, so an import
            # inserting lines that reference these accounts cannot deadlock against it.
            .with_for_update(key_share=True)
        )
        for account_id, cash, arrears, invoiceable in rows:
            balances[account_id] = {"cash": cash, "arrears": arrears, "invoiceable": invoiceable}
    missing = sorted(set(account_ids) - balances.keys())
    if missing:
        raise AccountNotFound(missing[0])
    return balances


@dataclass(frozen=True)
class Difference:
    account_id: str
    bucket: str
    unit_id: int | None
    cached_fen: int
    ledger_fen: int


# Rows fetched at a time when ``verify`` walks the balance holders.
_VERIFY_BATCH = 10_000


def verify(session: Session) -> list[Difference]:
    """Compare every cached balance with the sum of its ledger entries."""
    sums: dict[tuple[str, str, int | None], int] = {}
    rows = session.execute(
        select(
            LedgerEntry.account_id,
            LedgerEntry.bucket,
            LedgerEntry.unit_id,
            *fen_sum_parts(LedgerEntry.amount_fen),
        ).group_by(LedgerEntry.account_id, LedgerEntry.bucket, LedgerEntry.unit_id),
        execution_options={"yield_per": _VERIFY_BATCH},
    )
    for account_id, bucket, unit_id, high, low in rows:
        sums[(account_id, bucket, unit_id)] = fen_total(high, low)

    differences = []
    # Plain rows, streamed: balance holders as entities would all stay in the session's
    # identity map until it closes (hundreds of megabytes at a hundred thousand accounts).
    buckets = list(ACCOUNT_BUCKETS.items())
    accounts = session.execute(
        select(Account.id, *(getattr(Account, attr) for _, attr in buckets)),
        execution_options={"yield_per": _VERIFY_BATCH},
    )
    for account_id, *cached_balances in accounts:
        for (bucket, _attr), cached in zip(buckets, cached_balances):
            ledger = sums.pop((account_id, bucket, None), 0)
            if cached != ledger:
                differences.append(Difference(account_id, bucket, None, cached, ledger))
    for bucket, model in UNIT_MODELS.items():
        units = session.execute(
            select(model.id, model.account_id, model.balance_fen),
            execution_options={"yield_per": _VERIFY_BATCH},
        )
        for unit_id, account_id, balance_fen in units:
            ledger = sums.pop((account_id, bucket, unit_id), 0)
            if balance_fen != ledger:
                differences.append(Difference(account_id, bucket, unit_id, balance_fen, ledger))
    # Entries whose balance holder does not exist at all.
    for (account_id, bucket, unit_id), total in sums.items():
        if total:
            differences.append(Difference(account_id, bucket, unit_id, 0, total))
    return differences


@dataclass(frozen=True)
class BrokenReference:
    table: str
    row_id: int
    problem: str


def verify_references(session: Session) -> list[BrokenReference]:
    """Find ledger rows and statement lines that refer to rows that do not exist.

    These tables have no foreign keys (their inserts are the busiest writes; see
    ``LedgerEntry``), so this is where their references are checked: set-based, one query each.
    """
    broken: list[BrokenReference] = []
    txn, entry = LedgerTransaction, LedgerEntry
    for entry_id, transaction_id, txn_account, entry_account in session.execute(
        select(entry.id, entry.transaction_id, txn.account_id, entry.account_id)
        .outerjoin(txn, txn.id == entry.transaction_id)
        .where((txn.id.is_(None)) | (txn.account_id != entry.account_id))
        .order_by(entry.id)
    ):
        problem = (
            f"its transaction {transaction_id} does not exist"
            if txn_account is None
            else f"its account {entry_account} is not its transaction's ({txn_account})"
        )
        broken.append(BrokenReference("ledger_entries", entry_id, problem))
    checks = (
        ("ledger_transactions", txn.id, txn.account_id, Account.id, "account"),
        ("ledger_entries", entry.id, entry.account_id, Account.id, "account"),
        ("statement_lines", StatementLine.id, StatementLine.statement_id, Statement.id, "statement"),
        ("statement_lines", StatementLine.id, StatementLine.account_id, Account.id, "account"),
        ("statement_lines", StatementLine.id, StatementLine.suggested_account_id, Account.id, "suggested account"),
    )
    for table, row_id, column, target, what in checks:
        for found_id, value in session.execute(
            select(row_id, column)
            .outerjoin(target.class_, target == column)
            .where(column.is_not(None), target.is_(None))
            .order_by(row_id)
        ):
            broken.append(BrokenReference(table, found_id, f"its {what} {value} does not exist"))
    return broken


@dataclass(frozen=True)
class Inconsistency:
    table: str
    row_id: int | str
    problem: str


def verify_consistency(session: Session) -> list[Inconsistency]:
    """Find ledger rows that contradict their history, or the orders and lines they book.

    What the balance sums cannot see: an entry's ``balance_after_fen`` that is not the previous
    one plus its amount (a wrong figure, or an entry deleted from the middle of a history whose
    cached balance was made to fit); a transaction that lost its entries; a paid Alipay order
    without its credit, or a credit without its paid order; a statement line whose match and
    ledger credit disagree. Set-based: a few queries, whatever the size of the tables.
    """
    found: list[Inconsistency] = []
    found += _broken_balance_chains(session)
    found += _transactions_without_entries(session)
    found += _orders_and_credits_apart(session)
    found += _lines_and_credits_apart(session)
    return found


def _broken_balance_chains(session: Session) -> list[Inconsistency]:
    entry = LedgerEntry
    previous = func.lag(entry.balance_after_fen).over(
        partition_by=(entry.account_id, entry.bucket, entry.unit_id), order_by=entry.id
    )
    chain = select(
        entry.id, entry.amount_fen, entry.balance_after_fen, func.coalesce(previous, 0).label("previous")
    ).subquery()
    rows = session.execute(
        select(chain.c.id, chain.c.amount_fen, chain.c.balance_after_fen, chain.c.previous)
        .where(chain.c.balance_after_fen != chain.c.previous + chain.c.amount_fen)
        .order_by(chain.c.id)
    )
    return [
        Inconsistency(
            "ledger_entries",
            entry_id,
            f"its balance after {format_fen(int(after))} is not the previous balance"
            f" {format_fen(int(before))} plus its amount {format_fen(int(amount))}",
        )
        for entry_id, amount, after, before in rows
    ]


def _transactions_without_entries(session: Session) -> list[Inconsistency]:
    txn = LedgerTransaction
    # A bill charged wholly to the cloud marketplace account moves no balance of the wallet.
    wholly_cloud = (txn.kind == "bill") & exists().where(CloudCharge.bill_id == txn.reference)
    # An outer join, not NOT EXISTS: entries have no index on their transaction, and SQLite
    # would scan them once per transaction.
    booked = select(LedgerEntry.transaction_id).distinct().subquery()
    rows = session.execute(
        select(txn.id, txn.idempotency_key)
        .outerjoin(booked, booked.c.transaction_id == txn.id)
        .where(booked.c.transaction_id.is_(None), ~wholly_cloud)
        .order_by(txn.id)
    )
    return [Inconsistency("ledger_transactions", txn_id, f"{key} has no entries") for txn_id, key in rows]


def _orders_and_credits_apart(session: Session) -> list[Inconsistency]:
    txn, order = LedgerTransaction, TopupOrder
    found = [
        Inconsistency(
            "topup_orders",
            out_trade_no,
            f"paid, but its credit alipay:{out_trade_no} does not exist"
            if credited_account is None
            else f"paid by account {account_id}, but its credit went to account {credited_account}",
        )
        for out_trade_no, account_id, credited_account in session.execute(
            select(order.out_trade_no, order.account_id, txn.account_id)
            .outerjoin(txn, txn.idempotency_key == literal("alipay:", String) + order.out_trade_no)
            .where(order.status == "paid", (txn.id.is_(None)) | (txn.account_id != order.account_id))
            .order_by(order.out_trade_no)
        )
    ]
    found += [
        Inconsistency(
            "ledger_transactions",
            txn_id,
            f"credits top-up order {reference}, which does not exist"
            if status is None
            else f"credits top-up order {reference}, which is not paid ({status})",
        )
        for txn_id, reference, status in session.execute(
            select(txn.id, txn.reference, order.status)
            .outerjoin(order, order.out_trade_no == txn.reference)
            .where(txn.kind == "topup_alipay", (order.status.is_(None)) | (order.status != "paid"))
            .order_by(txn.id)
        )
    ]
    return found


def _lines_and_credits_apart(session: Session) -> list[Inconsistency]:
    """Lines whose status and credit counter disagree with their ``bank:`` transactions.

    A matched line's latest credit (``reconcile.credit_key``) exists, on the line's account,
    and is not undone; a line matched before and no longer is has its latest credit undone
    (``reconcile.undo_key``).
    """
    line = StatementLine
    credit, undo = aliased(LedgerTransaction), aliased(LedgerTransaction)
    line_key = literal("bank:", String) + cast(line.id, String)
    credit_key = case((line.credits == 1, line_key), else_=line_key + ":" + cast(line.credits, String))
    undo_key = line_key + ":undo:" + cast(line.credits, String)
    matched = line.status == "matched"
    rows = session.execute(
        select(line.id, line.status, line.account_id, credit_key, credit.account_id, undo.id)
        .outerjoin(credit, credit.idempotency_key == credit_key)
        .outerjoin(undo, undo.idempotency_key == undo_key)
        .where(
            (matched & (credit.id.is_(None) | (credit.account_id != line.account_id) | undo.id.is_not(None)))
            | (~matched & (line.credits > 0) & undo.id.is_(None))
        )
        .order_by(line.id)
    )
    found = []
    for line_id, status, account_id, key, credited_account, undo_id in rows:
        if status != "matched":
            problem = f"{status}, but its credit {key} is not undone"
        elif credited_account is None:
            problem = f"matched to account {account_id}, but its credit {key} does not exist"
        elif credited_account != account_id:
            problem = f"matched to account {account_id}, but its credit {key} went to account {credited_account}"
        else:
            problem = f"matched to account {account_id}, but its credit {key} is undone"
        found.append(Inconsistency("statement_lines", line_id, problem))
    return found
