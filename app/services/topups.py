"""Alipay QR top-ups: create orders, act on notifies, recover lost notifies by query."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.models import Account, AlipayNotification, TopupOrder
from ..config import Settings
from ..domain.errors import GatewayError, GatewayRejected, InvalidInput, NotFound
from ..domain.ids import new_out_trade_no
from ..domain.payment import Decision, Outcome, decide_notify
from . import ledger
from .clock import Clock

log = logging.getLogger(__name__)

# Alipay's bounds for total_amount: 0.01 to 100,000,000.00 yuan.
MAX_TOPUP_FEN = 100_000_000_00
# How long past its expiry an unpaid order waits before it is closed at Alipay.
CLOSE_GRACE = timedelta(minutes=2)
# Pending orders younger than this are left to their notify.
POLL_AFTER = timedelta(minutes=1)


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
        if session.get(Account, account_id) is None:
            raise NotFound(f"account {account_id} does not exist", code="account_not_found")
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
        with db.transaction() as session:
            session.execute(
                update(TopupOrder)
                .where(TopupOrder.out_trade_no == order.out_trade_no, TopupOrder.status == "pending")
                .values(status="closed", closed_at=clock.now())
            )
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


def get_topup(db: Database, out_trade_no: str) -> TopupView:
    """Return an order or raise NotFound."""
    with db.sessions() as session:
        order = session.get(TopupOrder, out_trade_no)
        if order is None:
            raise NotFound("no such top-up order", code="topup_not_found")
        return _view(order)


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
        key=f"alipay:{order.out_trade_no}",
        kind="topup_alipay",
        now=clock.now(),
        reference=order.out_trade_no,
        memo=f"Alipay trade {trade_no}" if trade_no else "Alipay top-up",
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
) -> NotifyResult:
    """Record a notify and, if it verified and passes every check, credit its order once.

    ``params`` are the notify's decoded parameters (None when undecodable) and ``verified``
    says whether the adapter found Alipay's signature valid over them.
    """
    now = clock.now()
    params = params or {}
    out_trade_no = (params.get("out_trade_no") or "")[:64] or None
    log_row = AlipayNotification(
        received_at=now,
        raw_body=raw_body,
        charset=charset[:16],
        notify_id=(params.get("notify_id") or "")[:128] or None,
        out_trade_no=out_trade_no,
        trade_status=(params.get("trade_status") or "")[:32] or None,
        verified=verified,
        outcome="",
    )
    context = {"out_trade_no": out_trade_no, "notify_id": log_row.notify_id}

    if decode_error is not None or not verified:
        log_row.outcome = "rejected_malformed" if decode_error else "rejected_signature"
        log_row.detail = decode_error or "signature does not verify with Alipay's public key"
        log_row.needs_review = True
        _store(db, log_row)
        log.warning("notify refused", extra={**context, "outcome": log_row.outcome})
        return NotifyResult(False, log_row.outcome)

    with db.transaction() as session:
        order = _lock_order(session, out_trade_no) if out_trade_no else None
        decision: Decision = decide_notify(
            params,
            our_app_id=settings.alipay_app_id,
            our_seller_id=settings.alipay_seller_id,
            order_amount_fen=order.amount_fen if order is not None else None,
        )
        log_row.outcome = decision.outcome.value
        log_row.detail = decision.detail
        log_row.needs_review = decision.needs_review
        if decision.outcome is Outcome.CREDIT:
            credited = _credit_order(
                session,
                clock,
                order,
                trade_no=(params.get("trade_no") or "")[:64] or None,
                paid_at=_beijing(params.get("gmt_payment")),
                via="notify",
            )
            log_row.outcome = "credited" if credited else "duplicate"
        session.add(log_row)
    level = logging.WARNING if decision.needs_review else logging.INFO
    log.log(level, "notify handled", extra={**context, "outcome": log_row.outcome})
    return NotifyResult(decision.acknowledge, log_row.outcome)


def _store(db: Database, row: AlipayNotification) -> None:
    with db.transaction() as session:
        session.add(row)


def _beijing(text: str | None) -> datetime | None:
    if not text:
        return None
    from ..adapters.alipay.beijing import parse_beijing

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
    except GatewayError:
        # A status read must not fail because Alipay is slow: the notify or the poll job
        # will settle it; the caller sees the order as it stands.
        log.warning("top-up query failed", extra={"out_trade_no": out_trade_no})
        return view
    apply_trade_status(db, clock, out_trade_no, status)
    return get_topup(db, out_trade_no)


def apply_trade_status(db: Database, clock: Clock, out_trade_no: str, status, *, close_expired=False) -> str:
    """Act on what ``alipay.trade.query`` said of an order; return what was done."""
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
    """Query stale pending orders: credit paid ones, close expired unpaid ones."""
    now = clock.now()
    counts = {"queried": 0, "credited": 0, "closed": 0, "errors": 0}
    with db.sessions() as session:
        stale = session.execute(
            select(TopupOrder.out_trade_no, TopupOrder.expires_at)
            .where(TopupOrder.status == "pending", TopupOrder.created_at <= now - POLL_AFTER)
            .order_by(TopupOrder.created_at)
            .limit(batch)
        ).all()
    for out_trade_no, expires_at in stale:
        try:
            status = gateway.query(out_trade_no)
            counts["queried"] += 1
            done = apply_trade_status(db, clock, out_trade_no, status)
            if done == "credited":
                counts["credited"] += 1
            elif done == "closed":
                counts["closed"] += 1
            elif done == "pending" and now >= expires_at + CLOSE_GRACE:
                # Unpaid past its expiry: close at Alipay (NOT_EXIST before a scan is normal),
                # then locally. Never alipay.trade.cancel: that refunds a paid trade.
                gateway.close(out_trade_no)
                with db.transaction() as session:
                    closed = session.execute(
                        update(TopupOrder)
                        .where(TopupOrder.out_trade_no == out_trade_no, TopupOrder.status == "pending")
                        .values(status="closed", closed_at=clock.now())
                    ).rowcount
                counts["closed"] += closed
        except (GatewayError, GatewayRejected):
            counts["errors"] += 1
            log.warning("top-up poll failed for one order", extra={"out_trade_no": out_trade_no})
    return counts
