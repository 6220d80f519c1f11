"""Alipay QR top-ups: create orders, act on notifies, recover lost notifies by query."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import (
    Connection,
    LargeBinary,
    bindparam,
    cast,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from ..adapters.alipay.beijing import parse_beijing
from ..adapters.db import Database
from ..adapters.db.models import Account, AlipayNotification, LedgerEntry, LedgerTransaction, TopupOrder
from ..adapters.db.types import UTCDateTime, require_aware
from ..config import Settings
from ..domain.errors import BalanceLimit, GatewayError, GatewayRejected, InsufficientFunds, InvalidInput, InvalidMoney, NotFound
from ..domain.ids import new_out_trade_no
from ..domain.money import MAX_BALANCE_FEN, check_balance, parse_amount
from ..domain.payment import Decision, Outcome, decide_notify
from ..domain.topup import split_topup
from . import ledger
from .accounts import existing_account
from .clock import Clock
from .unverified_notifies import UnverifiedNotifyBudget, bounded_body

log = logging.getLogger(__name__)

# Alipay's bounds for total_amount: 0.01 to 100,000,000.00 yuan.
MAX_TOPUP_FEN = 100_000_000_00
# How long past its expiry an unpaid order waits before it is closed at Alipay.
CLOSE_GRACE = timedelta(minutes=2)
# Pending orders younger than this are left to their notify.
POLL_AFTER = timedelta(minutes=1)
# Gateway failures in a row (timeouts, broken answers) after which a poll run stops.
UNREACHABLE_AFTER = 3


@dataclass(frozen=True)
class TopupView:
    out_trade_no: str
    account_id: str
    status: str
    amount_fen: int
    qr_code: str | None
    expires_at: datetime
    paid_at: datetime | None
    created_at: datetime


def _view(order: TopupOrder) -> TopupView:
    return TopupView(
        out_trade_no=order.out_trade_no,
        account_id=order.account_id,
        status=order.status,
        amount_fen=order.amount_fen,
        qr_code=order.qr_code,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        created_at=order.created_at,
    )


def create_topup(
    db: Database, clock: Clock, gateway, settings: Settings, *, account_id: str, amount_fen: int
) -> TopupView:
    """Commit a pending order, then ask Alipay for its QR code."""
    if amount_fen > MAX_TOPUP_FEN:
        raise InvalidInput("amount is above Alipay's limit of 100000000.00", code="amount_too_large")
    now = clock.now()
    order = TopupOrder(
        out_trade_no=new_out_trade_no(now),
        account_id=account_id,
        amount_fen=amount_fen,
        subject="Wallet top-up",
        status="pending",
        created_at=now,
        expires_at=now + timedelta(minutes=settings.topup_expiry_minutes),
    )
    with db.transaction() as session:
        existing_account(session, account_id)
        session.add(order)
    # The order exists before Alipay hears of it, so a notify can never find it missing.
    try:
        precreated = gateway.precreate(
            out_trade_no=order.out_trade_no,
            amount_fen=amount_fen,
            subject=order.subject,
            notify_url=settings.notify_url,
            expires_at=order.expires_at,
        )
    except GatewayRejected:
        # Alipay refused it, signed: no trade can exist, so the order is closed at once.
        _close_if_pending(db, clock, order.out_trade_no)
        raise
    # On a timeout or a gateway error the order stays pending: Alipay may have created the
    # trade, and the poll job will query and close it.
    with db.transaction() as session:
        session.execute(
            update(TopupOrder)
            .where(TopupOrder.out_trade_no == order.out_trade_no)
            .values(qr_code=precreated.qr_code)
        )
    order.qr_code = precreated.qr_code
    log.info("top-up order created", extra={"out_trade_no": order.out_trade_no, "account_id": account_id})
    return _view(order)


def _close_if_pending(db: Database, clock: Clock, out_trade_no: str) -> int:
    """Close an order that is still pending; return 1 if it was, 0 if it had moved on."""
    with db.transaction() as session:
        return session.execute(
            update(TopupOrder)
            .where(TopupOrder.out_trade_no == out_trade_no, TopupOrder.status == "pending")
            .values(status="closed", closed_at=clock.now())
        ).rowcount


def get_topup(db: Database, out_trade_no: str) -> TopupView:
    """Return an order or raise NotFound."""
    with db.sessions() as session:
        order = session.get(TopupOrder, out_trade_no)
        if order is None:
            raise NotFound("no such top-up order", code="topup_not_found")
        return _view(order)


def _credit_key(out_trade_no: str) -> str:
    """The ledger idempotency key of an order's credit: one per order, whichever path credits."""
    return f"alipay:{out_trade_no}"


def _credit_memo(trade_no: str | None) -> str:
    return f"Alipay trade {trade_no}" if trade_no else "Alipay top-up"


def _credit_order(
    session: Session, clock: Clock, order: TopupOrder, *, trade_no: str | None, paid_at: datetime | None, via: str
) -> bool:
    """Credit a locked order's amount once; return False when it was already credited."""
    if order.status == "paid":
        return False
    account = ledger.lock_account(session, order.account_id)
    ledger.credit_topup(
        session,
        account,
        amount_fen=order.amount_fen,
        key=_credit_key(order.out_trade_no),
        kind="topup_alipay",
        now=clock.now(),
        reference=order.out_trade_no,
        memo=_credit_memo(trade_no),
    )
    order.status = "paid"
    order.trade_no = trade_no
    order.paid_at = paid_at or clock.now()
    order.credited_by = via
    return True


def _lock_order(session: Session, out_trade_no: str) -> TopupOrder | None:
    return session.execute(
        select(TopupOrder).where(TopupOrder.out_trade_no == out_trade_no).with_for_update()
    ).scalar_one_or_none()


@dataclass(frozen=True)
class NotifyResult:
    acknowledge: bool
    outcome: str


# The notify is the hot path. It runs as SQLAlchemy Core statements on one connection, in one
# transaction, in as few round trips as the rules allow: on PostgreSQL BEGIN, one SELECT ... FOR
# UPDATE, one statement that writes everything, COMMIT. It writes exactly the rows that
# ``_credit_order`` + ``ledger.credit_topup`` write (same keys, same values); the query fallback
# keeps using those.
_orders = TopupOrder.__table__
_accounts = Account.__table__
_txns = LedgerTransaction.__table__
_entries = LedgerEntry.__table__
_notifications = AlipayNotification.__table__

# Locks the order, then its account, in one statement: FOR UPDATE without OF locks the rows of
# the FROM tables in their order, i.e. the order before the account, like ``_lock_order``
# followed by ``ledger.lock_account`` (and ``apply_trade_status``), so the two never deadlock.
_LOCK_ORDER_AND_ACCOUNT = (
    select(
        _orders.c.account_id,
        _orders.c.amount_fen,
        _orders.c.status,
        _accounts.c.cash_fen,
        _accounts.c.arrears_fen,
        _accounts.c.invoiceable_fen,
    )
    .select_from(_orders.join(_accounts, _accounts.c.id == _orders.c.account_id))
    .where(_orders.c.out_trade_no == bindparam("p_out_trade_no"))
    .with_for_update()
)
# What was received, then what was done with it.
_RECEIVED_COLUMNS = (
    "received_at", "raw_body", "charset", "notify_id", "out_trade_no", "trade_status", "verified",
)
_NOTIFICATION_COLUMNS = (*_RECEIVED_COLUMNS, "outcome", "detail", "needs_review")
# Every value is a named parameter ``p_<column>``: no execute parameter can be taken for a
# column of the INSERT by accident.
_INSERT_NOTIFICATION = insert(_notifications).values(
    {name: bindparam(f"p_{name}", type_=_notifications.c[name].type) for name in _NOTIFICATION_COLUMNS}
)
_INSERT_TXN = insert(_txns).values(
    idempotency_key=bindparam("p_key", type_=_txns.c.idempotency_key.type),
    account_id=bindparam("p_account_id", type_=_txns.c.account_id.type),
    kind=bindparam("p_kind", type_=_txns.c.kind.type),
    reference=bindparam("p_reference", type_=_txns.c.reference.type),
    memo=bindparam("p_memo", type_=_txns.c.memo.type),
    actor=bindparam("p_actor", type_=_txns.c.actor.type),
    created_at=bindparam("p_now", type_=_txns.c.created_at.type),
)
_UPDATE_ACCOUNT = (
    update(_accounts)
    .where(_accounts.c.id == bindparam("p_account_id", type_=_accounts.c.id.type))
    .values(
        cash_fen=bindparam("p_cash", type_=_accounts.c.cash_fen.type),
        arrears_fen=bindparam("p_arrears", type_=_accounts.c.arrears_fen.type),
        invoiceable_fen=bindparam("p_invoiceable", type_=_accounts.c.invoiceable_fen.type),
    )
)
_MARK_ORDER_PAID = (
    update(_orders)
    .where(_orders.c.out_trade_no == bindparam("p_out_trade_no", type_=_orders.c.out_trade_no.type))
    .values(
        status="paid",
        trade_no=bindparam("p_trade_no", type_=_orders.c.trade_no.type),
        paid_at=bindparam("p_paid_at", type_=_orders.c.paid_at.type),
        credited_by=bindparam("p_credited_by", type_=_orders.c.credited_by.type),
    )
)
_ENTRY_COLUMNS = (
    "transaction_id", "idempotency_key", "account_id", "bucket", "unit_id", "amount_fen",
    "balance_after_fen", "created_at",
)
# Step by step (SQLite): the ledger transaction's id comes back, then the entries name it.
_INSERT_ENTRIES = insert(_entries).values(
    transaction_id=bindparam("p_txn_id", type_=_entries.c.transaction_id.type),
    idempotency_key=bindparam("p_entry_key", type_=_entries.c.idempotency_key.type),
    account_id=bindparam("p_account_id", type_=_entries.c.account_id.type),
    bucket=bindparam("p_bucket", type_=_entries.c.bucket.type),
    unit_id=None,
    amount_fen=bindparam("p_amount", type_=_entries.c.amount_fen.type),
    balance_after_fen=bindparam("p_balance", type_=_entries.c.balance_after_fen.type),
    created_at=bindparam("p_now", type_=_entries.c.created_at.type),
)


def _entry_row(index: int):
    """The ``index``-th entry of a credit, as a SELECT over the ``txn`` CTE (one statement)."""
    return (
        bindparam(f"p_entry_key_{index}", type_=_entries.c.idempotency_key.type),
        bindparam("p_account_id", type_=_entries.c.account_id.type),
        bindparam(f"p_bucket_{index}", type_=_entries.c.bucket.type),
        cast(null(), _entries.c.unit_id.type),
        bindparam(f"p_amount_{index}", type_=_entries.c.amount_fen.type),
        bindparam(f"p_balance_{index}", type_=_entries.c.balance_after_fen.type),
        bindparam("p_now", type_=_entries.c.created_at.type),
    )


def _credit_statement(entry_count: int):
    """One PostgreSQL statement writing a credit and its notify row (data-modifying CTEs).

    The sub-statements touch different rows and see one snapshot; a reused idempotency key
    fails the whole statement, like the step-by-step inserts.
    """
    txn = _INSERT_TXN.returning(_txns.c.id).cte("txn")
    rows = [select(txn.c.id, *_entry_row(index)) for index in range(entry_count)]
    entries = (
        insert(_entries)
        .from_select(list(_ENTRY_COLUMNS), rows[0] if entry_count == 1 else union_all(*rows))
        .cte("entries")
    )
    return _INSERT_NOTIFICATION.add_cte(
        txn, entries, _UPDATE_ACCOUNT.cte("account"), _MARK_ORDER_PAID.cte("paid_order")
    )


# A top-up has one to three non-zero postings (arrears, invoiceable, cash).
_CREDIT_STATEMENTS = {count: _credit_statement(count) for count in (1, 2, 3)}


def _credit_unless_anything_differs():
    """One PostgreSQL statement that locks, credits and records a notify, or does nothing.

    It credits only the common case, which needs nothing read first: the order is not paid yet,
    its amount equals the notify's, and the account owes no arrears (so the whole amount is cash,
    one entry, as ``split_topup`` says). It locks the order and then its account (FOR UPDATE in
    the CTE, FROM order first, as ``_LOCK_ORDER_AND_ACCOUNT``); a concurrent notify that paid the
    order first leaves it empty once the lock is granted (PostgreSQL rechecks the conditions on
    the new row). It returns one row when it credited and none when anything differs; the caller
    then takes the general path, which reads the order and decides.
    """
    target = (
        select(_orders.c.out_trade_no, _orders.c.account_id, _accounts.c.cash_fen)
        .select_from(_orders.join(_accounts, _accounts.c.id == _orders.c.account_id))
        .where(
            _orders.c.out_trade_no == bindparam("p_out_trade_no", type_=_orders.c.out_trade_no.type),
            _orders.c.status != "paid",
            _orders.c.amount_fen == bindparam("p_amount", type_=_orders.c.amount_fen.type),
            _accounts.c.arrears_fen == 0,
            # A credit past the balance limit is refused by the general path.
            _accounts.c.cash_fen <= MAX_BALANCE_FEN - bindparam("p_amount", type_=_accounts.c.cash_fen.type),
        )
        .with_for_update()
        .cte("target")
    )
    cash_after = target.c.cash_fen + bindparam("p_amount", type_=_accounts.c.cash_fen.type)
    txn = (
        insert(_txns)
        .from_select(
            ["idempotency_key", "account_id", "kind", "reference", "memo", "actor", "created_at"],
            select(
                bindparam("p_key", type_=_txns.c.idempotency_key.type),
                target.c.account_id,
                literal("topup_alipay", _txns.c.kind.type),
                target.c.out_trade_no,
                bindparam("p_memo", type_=_txns.c.memo.type),
                literal("", _txns.c.actor.type),
                bindparam("p_now", type_=_txns.c.created_at.type),
            ),
        )
        .returning(_txns.c.id)
        .cte("txn")
    )
    entry = (
        insert(_entries)
        .from_select(
            list(_ENTRY_COLUMNS),
            select(
                txn.c.id,
                bindparam("p_entry_key", type_=_entries.c.idempotency_key.type),
                target.c.account_id,
                literal("cash", _entries.c.bucket.type),
                cast(null(), _entries.c.unit_id.type),
                bindparam("p_amount", type_=_entries.c.amount_fen.type),
                cash_after,
                bindparam("p_now", type_=_entries.c.created_at.type),
            ).select_from(txn.join(target, true())),
        )
        .cte("entry")
    )
    account = (
        update(_accounts).where(_accounts.c.id == target.c.account_id).values(cash_fen=cash_after).cte("account")
    )
    paid = (
        update(_orders)
        .where(_orders.c.out_trade_no == target.c.out_trade_no)
        .values(
            status="paid",
            trade_no=bindparam("p_trade_no", type_=_orders.c.trade_no.type),
            paid_at=bindparam("p_paid_at", type_=_orders.c.paid_at.type),
            credited_by="notify",
        )
        .cte("paid_order")
    )
    record = select(
        *(
            bindparam(f"p_{name}", type_=_notifications.c[name].type) for name in _RECEIVED_COLUMNS
        ),
        literal("credited", _notifications.c.outcome.type),
        literal("", _notifications.c.detail.type),
        literal(False, _notifications.c.needs_review.type),
    ).select_from(target)
    return (
        insert(_notifications)
        .from_select(list(_NOTIFICATION_COLUMNS), record)
        .returning(_notifications.c.id)
        .add_cte(txn, entry, account, paid)
    )


_CREDIT_UNLESS_ANYTHING_DIFFERS = _credit_unless_anything_differs()


class _Locked(NamedTuple):
    account_id: str
    amount_fen: int
    status: str
    cash_fen: int
    arrears_fen: int
    invoiceable_fen: int


# PostgreSQL: each statement's SQL with $n placeholders, the parameter name of each placeholder,
# its literal parameters and the bind processors it needs, by statement and server version; compiled on
# first use.
_DRIVER_SQL: dict[tuple, tuple[str, tuple[str, ...], dict, dict]] = {}
# A pyformat placeholder, or a literal percent sign escaped for pyformat.
_PYFORMAT = re.compile(r"%\(([^)]+)\)s|%%")


def _execute(connection: Connection, statement, params: dict):
    """Run a Core statement in the connection's transaction; return a cursor-like result.

    On PostgreSQL the statement's SQL, compiled once, goes straight to the driver's cursor:
    per execution SQLAlchemy's statement machinery costs more CPU than the driver itself (about
    0.3 ms of a notify's 0.5 ms in the handler, measured), and this is the service's busiest
    write. Parameters go through the bind processors psycopg still needs
    (``_driver_bind_processor``: a naive datetime is refused as with ``Connection.execute``);
    errors are the driver's own (the caller's transaction rolls back the same way). Other
    dialects use ``Connection.execute``.
    """
    if connection.dialect.name != "postgresql":
        return connection.execute(statement, params)
    cursor = _raw_cursor(connection.connection.driver_connection)
    return _driver_execute(cursor, connection.dialect, statement, params)


def _positional(sql: str) -> tuple[str, tuple[str, ...]]:
    """Turn SQLAlchemy's pyformat SQL into PostgreSQL's own $n placeholders and their names."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PYFORMAT.sub(number, sql), tuple(names)


def _driver_execute(cursor, dialect, statement, params: dict):
    """Run a Core statement on a PostgreSQL raw cursor from SQL compiled once; return the cursor.

    The SQL goes to the server as written, with positional parameters (psycopg's raw cursor):
    psycopg then has no named placeholders to convert and reorder on every execution, which
    was a fifth of the credit's client CPU.
    """
    key = (statement, dialect.server_version_info)
    compiled = _DRIVER_SQL.get(key)
    if compiled is None:
        done = statement.compile(dialect=dialect)
        literals = {name: bind.value for name, bind in done.binds.items() if not bind.required}
        processors = {}
        for name, bind in done.binds.items():
            processor = _driver_bind_processor(bind.type, dialect)
            if processor is not None:
                processors[name] = processor
        compiled = _DRIVER_SQL[key] = (*_positional(done.string), literals, processors)
    sql, names, literals, processors = compiled
    values = {**params, **literals}
    for name, processor in processors.items():
        if name in values:
            values[name] = processor(values[name])
    cursor.execute(sql, [values[name] for name in names])
    return cursor


def _driver_bind_processor(type_, dialect):
    """The bind processor a parameter needs when it goes to psycopg as it is.

    psycopg sends ``bytes`` as bytea and an aware ``datetime`` as timestamptz by itself.
    SQLAlchemy's processors for them wrap the bytes in the DB-API's ``Binary`` and convert every
    timestamp to UTC first, which psycopg does not need: they were a sixth of the credit
    statement's client instructions (227k -> 189k per execution, counted with callgrind). Only
    ``UTCDateTime``'s guard stays: a naive datetime is refused as ``Connection.execute`` refuses
    it.
    """
    if isinstance(type_, UTCDateTime):
        return require_aware
    if isinstance(type_, LargeBinary):
        return None
    return type_.bind_processor(dialect)


def _credit_in_one_statement(db: Database, values: dict) -> bool:
    """Run ``_CREDIT_UNLESS_ANYTHING_DIFFERS`` as its own transaction; True if it credited.

    Autocommit: the one statement is the transaction (atomic, committed durably before the
    server answers), so the notify costs one round trip instead of BEGIN, read, write, COMMIT.
    It runs on the thread's own autocommit connection, outside the pool, through its kept cursor.
    """
    with db.thread_connections.cursor(_raw_cursor) as cursor:
        credited = _driver_execute(cursor, db.engine.dialect, _CREDIT_UNLESS_ANYTHING_DIFFERS, values).fetchone()
    return credited is not None


def _raw_cursor(driver_connection):
    from psycopg import RawCursor  # the PostgreSQL driver is an optional extra

    return RawCursor(driver_connection)


def handle_alipay_notify(
    db: Database,
    clock: Clock,
    settings: Settings,
    *,
    raw_body: bytes,
    params: dict[str, str] | None,
    verified: bool,
    charset: str,
    decode_error: str | None = None,
    budget: UnverifiedNotifyBudget | None = None,
) -> NotifyResult:
    """Record a notify and, if it verified and passes every check, credit its order once.

    ``params`` are the notify's decoded parameters (None when undecodable) and ``verified``
    says whether the adapter found Alipay's signature valid over them. ``budget`` is the
    process's memory of the hourly budget of unverified notifies (a fresh one asks the database).
    """
    now = clock.now()
    params = params or {}
    out_trade_no = (params.get("out_trade_no") or "")[:64] or None
    notification = {
        "p_received_at": now,
        "p_raw_body": raw_body,
        "p_charset": charset[:16],
        "p_notify_id": (params.get("notify_id") or "")[:128] or None,
        "p_out_trade_no": out_trade_no,
        "p_trade_status": (params.get("trade_status") or "")[:32] or None,
        "p_verified": verified,
        "p_outcome": "",
        "p_detail": "",
        "p_needs_review": False,
    }
    context = {"out_trade_no": out_trade_no, "notify_id": notification["p_notify_id"]}

    if decode_error is not None or not verified:
        # Not Alipay's (as far as anyone can tell): kept for review, but bounded, since anyone
        # can post here. A verified notify is always kept whole.
        outcome = "rejected_malformed" if decode_error else "rejected_signature"
        body, cut = bounded_body(raw_body, settings.notify_unverified_body_bytes)
        notification["p_raw_body"] = body
        notification["p_outcome"] = outcome
        notification["p_detail"] = (decode_error or "signature does not verify with Alipay's public key") + cut
        notification["p_needs_review"] = True
        budget = budget or UnverifiedNotifyBudget()
        with db.engine.begin() as connection:
            if not budget.admits(connection, now, settings.notify_unverified_per_hour):
                return NotifyResult(False, "not_stored")
            _execute(connection, _INSERT_NOTIFICATION, notification)
        log.warning("notify refused", extra={**context, "outcome": outcome})
        return NotifyResult(False, outcome)

    if _one_statement_credits(db) and out_trade_no:
        credited = _credit_if_nothing_differs(db, clock, settings, params, notification, out_trade_no)
        if credited:
            log.info("notify handled", extra={**context, "outcome": "credited"})
            return NotifyResult(True, "credited")

    with db.engine.begin() as connection:
        locked = None
        if out_trade_no:
            row = _execute(connection, _LOCK_ORDER_AND_ACCOUNT, {"p_out_trade_no": out_trade_no}).fetchone()
            locked = _Locked(*row) if row is not None else None
        decision: Decision = decide_notify(
            params,
            our_app_id=settings.alipay_app_id,
            our_seller_id=settings.alipay_seller_id,
            order_amount_fen=locked.amount_fen if locked is not None else None,
        )
        outcome = decision.outcome.value
        notification["p_detail"] = decision.detail
        notification["p_needs_review"] = decision.needs_review
        if decision.outcome is Outcome.CREDIT and locked.status == "paid":
            outcome = "duplicate"
        if decision.outcome is Outcome.CREDIT and locked.status != "paid":
            notification["p_outcome"] = outcome = "credited"
            try:
                _credit_and_record(
                    connection,
                    out_trade_no,
                    locked,
                    notification,
                    now=clock.now(),
                    trade_no=(params.get("trade_no") or "")[:64] or None,
                    paid_at=_beijing(params.get("gmt_payment")),
                )
            except BalanceLimit as exc:
                # Refused before anything was written: recorded for review like a notify that
                # fails a check, and not acknowledged, so that Alipay retries it.
                decision = replace(decision, acknowledge=False, needs_review=True, detail=str(exc))
                outcome = "rejected_balance_limit"
                notification.update(p_outcome=outcome, p_detail=decision.detail, p_needs_review=True)
                _execute(connection, _INSERT_NOTIFICATION, notification)
        else:
            notification["p_outcome"] = outcome
            _execute(connection, _INSERT_NOTIFICATION, notification)
    level = logging.WARNING if decision.needs_review else logging.INFO
    log.log(level, "notify handled", extra={**context, "outcome": outcome})
    return NotifyResult(decision.acknowledge, outcome)


def _one_statement_credits(db: Database) -> bool:
    dialect = db.engine.dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def _credit_if_nothing_differs(
    db: Database, clock: Clock, settings: Settings, params: dict, notification: dict, out_trade_no: str
) -> bool:
    """The common case in one statement: a paid notify for an unpaid order of an account without
    arrears, whose amount is the order's. The decision is ``decide_notify``'s, taken as if the
    order's amount were the notify's; the statement credits only if it is. False: nothing was
    written, the general path decides."""
    try:
        amount_fen = parse_amount(params.get("total_amount") or "", field="total_amount")
    except InvalidMoney:
        return False
    decision = decide_notify(
        params,
        our_app_id=settings.alipay_app_id,
        our_seller_id=settings.alipay_seller_id,
        order_amount_fen=amount_fen,
    )
    if decision.outcome is not Outcome.CREDIT:
        return False
    now = clock.now()
    key = _credit_key(out_trade_no)
    trade_no = (params.get("trade_no") or "")[:64] or None
    values = {
        **{f"p_{name}": notification[f"p_{name}"] for name in _RECEIVED_COLUMNS},
        "p_amount": amount_fen,
        "p_key": key,
        "p_entry_key": ledger.entry_key(key, 0, "cash"),
        "p_memo": _credit_memo(trade_no),
        "p_now": now,
        "p_trade_no": trade_no,
        "p_paid_at": _beijing(params.get("gmt_payment")) or now,
    }
    return _credit_in_one_statement(db, values)


def _credit_and_record(
    connection: Connection,
    out_trade_no: str,
    locked: _Locked,
    notification: dict,
    *,
    now: datetime,
    trade_no: str | None,
    paid_at: datetime | None,
) -> None:
    """Credit a pending order whose row and account row are locked, and store the notify row.

    Writes what ``_credit_order`` writes: the ledger transaction under
    ``alipay:<out_trade_no>``, one entry per non-zero posting keyed ``<key>/<index>:<bucket>``
    (arrears paid off first and made invoiceable, the rest cash), the account's cached
    balances and the order marked paid. A reused key raises a unique violation (the driver's on
    PostgreSQL, ``IntegrityError`` elsewhere): the caller's transaction rolls back and nothing is
    acknowledged.
    """
    key = _credit_key(out_trade_no)
    split = split_topup(locked.amount_fen, locked.arrears_fen)
    balances = {"cash": locked.cash_fen, "arrears": locked.arrears_fen, "invoiceable": locked.invoiceable_fen}
    entries = []
    postings = (("arrears", -split.arrears_paid_fen), ("invoiceable", split.arrears_paid_fen), ("cash", split.cash_fen))
    for index, (bucket, amount_fen) in enumerate(p for p in postings if p[1]):
        balances[bucket] = check_balance(balances[bucket] + amount_fen, bucket)
        if balances[bucket] < 0:
            raise InsufficientFunds(f"{bucket} would go below zero")
        entries.append((ledger.entry_key(key, index, bucket), bucket, amount_fen, balances[bucket]))
    values = {
        **notification,
        "p_key": key,
        "p_account_id": locked.account_id,
        "p_kind": "topup_alipay",
        "p_reference": out_trade_no,
        "p_memo": _credit_memo(trade_no),
        "p_actor": "",
        "p_now": now,
        "p_cash": balances["cash"],
        "p_arrears": balances["arrears"],
        "p_invoiceable": balances["invoiceable"],
        "p_out_trade_no": out_trade_no,
        "p_trade_no": trade_no,
        "p_paid_at": paid_at or now,
        "p_credited_by": "notify",
    }
    if connection.dialect.name == "postgresql":
        for index, (entry_key, bucket, amount_fen, balance) in enumerate(entries):
            values[f"p_entry_key_{index}"] = entry_key
            values[f"p_bucket_{index}"] = bucket
            values[f"p_amount_{index}"] = amount_fen
            values[f"p_balance_{index}"] = balance
        _execute(connection, _CREDIT_STATEMENTS[len(entries)], values)
        return
    values["p_txn_id"] = connection.execute(_INSERT_TXN, values).inserted_primary_key[0]
    for entry_key, bucket, amount_fen, balance in entries:
        connection.execute(
            _INSERT_ENTRIES,
            {**values, "p_entry_key": entry_key, "p_bucket": bucket, "p_amount": amount_fen, "p_balance": balance},
        )
    connection.execute(_UPDATE_ACCOUNT, values)
    connection.execute(_MARK_ORDER_PAID, values)
    connection.execute(_INSERT_NOTIFICATION, values)


def _beijing(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_beijing(text)
    except ValueError:
        return None


def refresh_topup(db: Database, clock: Clock, gateway, settings: Settings, out_trade_no: str) -> TopupView:
    """Return an order; for a pending one ask Alipay (rate-limited) and credit a payment."""
    view = get_topup(db, out_trade_no)
    if view.status != "pending":
        return view
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.topup_query_min_interval_seconds)
    with db.transaction() as session:
        claimed = session.execute(
            update(TopupOrder)
            .where(
                TopupOrder.out_trade_no == out_trade_no,
                TopupOrder.status == "pending",
                or_(TopupOrder.last_queried_at.is_(None), TopupOrder.last_queried_at <= cutoff),
            )
            .values(last_queried_at=now)
        ).rowcount
    if not claimed:
        return view
    try:
        status = gateway.query(out_trade_no)
    except (GatewayError, GatewayRejected):
        # A status read must not fail because Alipay is slow, answers a system error
        # (ACQ.SYSTEM_ERROR) or refuses the query: the notify or the poll job will settle it;
        # the caller sees the order as it stands.
        log.warning("top-up query failed", extra={"out_trade_no": out_trade_no})
        return view
    apply_trade_status(db, clock, out_trade_no, status)
    return get_topup(db, out_trade_no)


def apply_trade_status(db: Database, clock: Clock, out_trade_no: str, status) -> str:
    """Act on what ``alipay.trade.query`` said of an order; return what was done."""
    try:
        return _apply_trade_status(db, clock, out_trade_no, status)
    except BalanceLimit:
        # Paid at Alipay, but the credit would take the account past the balance limit: the
        # order stays pending (nothing was written) for an operator, and the status read or
        # the poll job answers as for any order it could not settle.
        log.error("queried payment would pass the balance limit", extra={"out_trade_no": out_trade_no})
        return "balance_limit"


def _apply_trade_status(db: Database, clock: Clock, out_trade_no: str, status) -> str:
    with db.transaction() as session:
        order = _lock_order(session, out_trade_no)
        if order is None or order.status == "paid":
            return "unchanged"
        if status.is_paid:
            if status.total_amount_fen != order.amount_fen:
                log.error(
                    "queried trade amount differs from the order",
                    extra={"out_trade_no": out_trade_no},
                )
                return "amount_mismatch"
            _credit_order(session, clock, order, trade_no=status.trade_no, paid_at=status.paid_at, via="query")
            log.info("top-up credited from query", extra={"out_trade_no": out_trade_no})
            return "credited"
        if status.status == "TRADE_CLOSED" and order.status == "pending":
            order.status, order.closed_at = "closed", clock.now()
            return "closed"
    return "pending"


def poll_pending_topups(db: Database, clock: Clock, gateway, *, batch: int = 200) -> dict[str, int]:
    """Query stale pending orders: credit paid ones, close expired unpaid ones.

    Each run takes the ``batch`` orders queried least recently (never queried first, then the
    oldest), each marked as it is queried: orders that stay pending run after run (a close
    Alipay keeps refusing, a paid amount that differs) cannot crowd out the others. After
    ``UNREACHABLE_AFTER`` failures in a row Alipay counts as unreachable and the rest of the
    batch waits for the next run ("deferred"), rather than each order waiting out its timeout.
    """
    now = clock.now()
    counts = {"queried": 0, "credited": 0, "closed": 0, "errors": 0, "deferred": 0}
    with db.sessions() as session:
        stale = session.execute(
            select(TopupOrder.out_trade_no, TopupOrder.expires_at)
            .where(TopupOrder.status == "pending", TopupOrder.created_at <= now - POLL_AFTER)
            .order_by(TopupOrder.last_queried_at.asc().nulls_first(), TopupOrder.created_at)
            .limit(batch)
        ).all()
    failures = 0
    for index, (out_trade_no, expires_at) in enumerate(stale):
        if failures >= UNREACHABLE_AFTER:
            counts["deferred"] = len(stale) - index
            log.warning("Alipay unreachable: the other pending orders wait for the next poll",
                        extra={"deferred": counts["deferred"]})
            break
        with db.transaction() as session:
            session.execute(
                update(TopupOrder).where(TopupOrder.out_trade_no == out_trade_no).values(last_queried_at=now)
            )
        try:
            status = gateway.query(out_trade_no)
            counts["queried"] += 1
            done = apply_trade_status(db, clock, out_trade_no, status)
            if done == "credited":
                counts["credited"] += 1
            elif done == "closed":
                counts["closed"] += 1
            elif done == "balance_limit":
                counts["errors"] += 1
            elif done == "pending" and now >= expires_at + CLOSE_GRACE:
                # Unpaid past its expiry: close at Alipay (NOT_EXIST before a scan is normal),
                # then locally. Never alipay.trade.cancel: that refunds a paid trade.
                gateway.close(out_trade_no)
                counts["closed"] += _close_if_pending(db, clock, out_trade_no)
            failures = 0
        except GatewayRejected:
            # Alipay answered: a refusal of this order, not an outage.
            failures = 0
            counts["errors"] += 1
            log.warning("top-up poll failed for one order", extra={"out_trade_no": out_trade_no})
        except GatewayError:
            failures += 1
            counts["errors"] += 1
            log.warning("top-up poll failed for one order", extra={"out_trade_no": out_trade_no})
    return counts
