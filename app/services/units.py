"""Coupons and prepaid cards as balance units: granting them, showing them, their spendable totals.

A unit is created empty and filled by a ledger posting (the grant), so ``ledger verify`` covers
units exactly like cash.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.models import Account, Coupon, PrepaidCard
from ..adapters.db.types import fen_sum_parts, fen_total
from ..domain.money import format_fen
from . import ledger
from .idempotency import key_reused
from .ledger import Posting


def recorded_unit(session: Session, key: str | None, model, **terms):
    """The coupon or card that the movement recorded under ``key`` created; None without one.

    A request keyed by its client's idempotency key finds here what an earlier run of it gave.
    Raises ``idempotency_key_reused`` when that unit differs from ``terms`` (column: value).
    """
    reference = ledger.reference_of(session, key) if key is not None else None
    if reference is None:
        return None
    unit = session.get(model, int(reference.rpartition(":")[2]))  # "coupon:<id>", "prepaid_card:<id>"
    if unit is None or any(getattr(unit, name) != value for name, value in terms.items()):
        raise key_reused()
    return unit


def grant_coupon(
    session: Session,
    account: Account,
    *,
    kind: str,
    face_value_fen: int,
    valid_from: datetime,
    expires_at: datetime,
    origin: str,
    now: datetime,
    key: str | None = None,
    origin_ref: str = "",
    actor: str = "",
) -> Coupon:
    """Create a coupon on a locked account and post its face value to it.

    ``key`` is the movement's idempotency key; by default ``coupon-grant:<id>``.
    """
    coupon = Coupon(
        account_id=account.id,
        kind=kind,
        face_value_fen=face_value_fen,
        balance_fen=0,
        status="active",
        valid_from=valid_from,
        expires_at=expires_at,
        activated_at=now,
        origin=origin,
        origin_ref=origin_ref,
        created_at=now,
    )
    session.add(coupon)
    session.flush()
    ledger.record(
        session,
        account,
        key=key or f"coupon-grant:{coupon.id}",
        kind="coupon_grant",
        postings=[Posting("coupon", face_value_fen, coupon)],
        now=now,
        reference=f"coupon:{coupon.id}",
        memo=f"{kind} coupon ({origin})",
        actor=actor,
    )
    return coupon


def new_card(
    session: Session,
    account: Account,
    *,
    face_value_fen: int,
    price_fen: int,
    origin: str,
    valid_from: datetime,
    expires_at: datetime,
    now: datetime,
    actor: str = "",
) -> PrepaidCard:
    """Create an empty prepaid card on a locked account; the caller posts its balance."""
    card = PrepaidCard(
        account_id=account.id,
        face_value_fen=face_value_fen,
        balance_fen=0,
        price_fen=price_fen,
        status="active",
        origin=origin,
        valid_from=valid_from,
        expires_at=expires_at,
        created_at=now,
        created_by=actor,
    )
    session.add(card)
    session.flush()
    return card


def shown_status(status: str, expires_at: datetime, now: datetime) -> str:
    """Return the status a person should see: past its window a unit is expired already."""
    if status == "active" and expires_at <= now:
        return "expired"
    return status


def coupon_view(coupon: Coupon, now: datetime) -> dict:
    """Return a coupon as the API shows it."""
    return {
        "id": str(coupon.id),
        "kind": coupon.kind,
        "face_value": format_fen(coupon.face_value_fen),
        "balance": format_fen(coupon.balance_fen),
        "status": shown_status(coupon.status, coupon.expires_at, now),
        "valid_from": _iso(coupon.valid_from),
        "expires_at": _iso(coupon.expires_at),
        "activated_at": _iso(coupon.activated_at),
    }


def card_view(card: PrepaidCard, now: datetime) -> dict:
    """Return a prepaid card as the API shows it."""
    return {
        "id": str(card.id),
        "face_value": format_fen(card.face_value_fen),
        "balance": format_fen(card.balance_fen),
        "status": shown_status(card.status, card.expires_at, now),
        "valid_from": _iso(card.valid_from),
        "expires_at": _iso(card.expires_at),
        "origin": card.origin,
    }


def newest_coupons(db: Database, account_id: str, now: datetime, *, limit: int) -> tuple[list[dict], int]:
    """Return an account's ``limit`` newest coupons, oldest first, and how many it holds."""
    return _newest(db, Coupon, coupon_view, account_id, now, limit)


def newest_cards(db: Database, account_id: str, now: datetime, *, limit: int) -> tuple[list[dict], int]:
    """Return an account's ``limit`` newest prepaid cards, oldest first, and how many it holds."""
    return _newest(db, PrepaidCard, card_view, account_id, now, limit)


def _newest(db: Database, model, view, account_id: str, now: datetime, limit: int) -> tuple[list[dict], int]:
    # Used-up and expired units stay for good: a page showing all of them grows with the
    # account's history (thousands of rows for a large account), so it shows the newest.
    with db.sessions() as session:
        units = session.execute(
            select(model).where(model.account_id == account_id).order_by(model.id.desc()).limit(limit)
        ).scalars().all()
        total = len(units)
        if total == limit:
            total = session.execute(
                select(func.count()).select_from(model).where(model.account_id == account_id)
            ).scalar_one()
        return [view(unit, now) for unit in reversed(units)], total


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _spendable_total(session: Session, model, account_id: str, now: datetime, *where) -> int:
    high, low = session.execute(
        select(*fen_sum_parts(model.balance_fen)).where(
            model.account_id == account_id,
            model.status == "active",
            model.valid_from <= now,
            model.expires_at > now,
            *where,
        )
    ).one()
    return fen_total(high, low)


def regular_coupons_total(session: Session, account_id: str, now: datetime) -> int:
    """Return what the account's regular coupons can pay now."""
    return _spendable_total(session, Coupon, account_id, now, Coupon.kind == "regular")


def discount_coupons_total(session: Session, account_id: str, now: datetime) -> int:
    """Return what the account's discount coupons can pay now."""
    return _spendable_total(session, Coupon, account_id, now, Coupon.kind == "discount")


def prepaid_cards_total(session: Session, account_id: str, now: datetime) -> int:
    """Return what the account's prepaid cards can pay now."""
    return _spendable_total(session, PrepaidCard, account_id, now)


# Registered in ``wallet.UNIT_TOTALS`` under the wallet's figure names.
SPENDABLE_TOTALS = {
    "regular_coupons": regular_coupons_total,
    "discount_coupons": discount_coupons_total,
    "prepaid_cards": prepaid_cards_total,
}
