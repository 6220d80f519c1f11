"""Prepaid cards: bought with cash (earning a discount coupon by tier), allocated, listed."""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select

from ..adapters.db import Database
from ..adapters.db.models import Coupon, PrepaidCard
from ..config import Settings
from ..domain.errors import InsufficientFunds, InvalidInput, NotFound
from ..domain.tiers import bonus_coupon_fen, card_expires_at, check_card_amount
from . import ledger
from .accounts import existing_account
from .clock import Clock
from .coupons import check_window
from .ledger import Posting
from .locks import lock_account
from .units import card_view, coupon_view, grant_coupon, new_card, recorded_unit

log = logging.getLogger(__name__)


def buy_prepaid_card(
    db: Database,
    clock: Clock,
    settings: Settings,
    *,
    account_id: str,
    amount_fen: int,
    actor: str,
    request_key: str | None = None,
) -> dict:
    """Buy a card with cash; the price becomes invoiceable and may earn a discount coupon.

    Fails with nothing changed when cash is short. ``request_key`` (the client's idempotency
    key, digested) keys the purchase in the ledger: a repeated request finds the card it bought
    instead of buying another, even when the first one's answer was lost with its process.
    """
    check_card_amount(amount_fen)
    now = clock.now()
    expires_at = card_expires_at(now, settings.prepaid_card_validity_days)
    tiers = [(tier.threshold_fen, tier.coupon_fen) for tier in settings.discount_tiers]
    with db.transaction() as session:
        account = lock_account(session, account_id)
        if request_key is not None:
            bought = _bought_for(session, account_id, request_key, amount_fen, now)
            if bought is not None:
                return bought
        if account.cash_fen < amount_fen:
            raise InsufficientFunds(
                "the cash balance is too low to buy this card", code="insufficient_funds"
            )
        card = new_card(
            session,
            account,
            face_value_fen=amount_fen,
            price_fen=amount_fen,
            origin="purchase",
            valid_from=now,
            expires_at=expires_at,
            now=now,
            actor=actor,
        )
        ledger.record(
            session,
            account,
            key=_purchase_key(request_key) if request_key is not None else f"card-purchase:{card.id}",
            kind="card_purchase",
            postings=[
                Posting("cash", -amount_fen),
                Posting("invoiceable", amount_fen),
                Posting("prepaid_card", amount_fen, card),
            ],
            now=now,
            reference=f"prepaid_card:{card.id}",
            actor=actor,
        )
        bonus_fen = bonus_coupon_fen(amount_fen, tiers)
        bonus = None
        if bonus_fen:
            # Keyed by the card, so one purchase can never earn two coupons.
            bonus = grant_coupon(
                session,
                account,
                kind="discount",
                face_value_fen=bonus_fen,
                valid_from=now,
                expires_at=expires_at,
                origin="card_bonus",
                origin_ref=f"prepaid_card:{card.id}",
                now=now,
                key=f"card-bonus:{card.id}",
                actor=actor,
            )
        result = {
            "card": card_view(card, now),
            "bonus_coupon": coupon_view(bonus, now) if bonus is not None else None,
        }
    log.info(
        "prepaid card bought",
        extra={"account_id": account_id, "card_id": result["card"]["id"], "amount_fen": amount_fen},
    )
    return result


def _purchase_key(request_key: str) -> str:
    return f"card-purchase:request:{request_key}"


def _bought_for(session, account_id: str, request_key: str, amount_fen: int, now: datetime) -> dict | None:
    """The answer of the purchase ``request_key`` already made, or None if it made none."""
    card = recorded_unit(
        session, _purchase_key(request_key), PrepaidCard, account_id=account_id, price_fen=amount_fen
    )
    if card is None:
        return None
    bonus = session.scalar(
        select(Coupon).where(
            Coupon.account_id == account_id,
            Coupon.origin == "card_bonus",
            Coupon.origin_ref == f"prepaid_card:{card.id}",
        )
    )
    return {"card": card_view(card, now), "bonus_coupon": coupon_view(bonus, now) if bonus is not None else None}


def allocate_prepaid_card(
    db: Database,
    clock: Clock,
    *,
    account_id: str,
    amount_fen: int,
    expires_at: datetime,
    actor: str,
    request_key: str | None = None,
) -> dict:
    """Give an account a card (partner or administrator); no cash paid, so nothing invoiceable.

    ``request_key`` keys the grant in the ledger as it keys a purchase (``buy_prepaid_card``).
    """
    now = clock.now()
    check_window(now, expires_at, now)
    key = f"card-grant:request:{request_key}" if request_key is not None else None
    with db.transaction() as session:
        try:
            account = lock_account(session, account_id)
        except NotFound as exc:
            raise InvalidInput(exc.detail, code="unknown_account", field="account_id") from exc
        given = recorded_unit(
            session, key, PrepaidCard, account_id=account_id, face_value_fen=amount_fen, expires_at=expires_at
        )
        if given is not None:
            return card_view(given, now)
        card = new_card(
            session,
            account,
            face_value_fen=amount_fen,
            price_fen=0,
            origin="allocation",
            valid_from=now,
            expires_at=expires_at,
            now=now,
            actor=actor,
        )
        ledger.record(
            session,
            account,
            key=key or f"card-grant:{card.id}",
            kind="card_grant",
            postings=[Posting("prepaid_card", amount_fen, card)],
            now=now,
            reference=f"prepaid_card:{card.id}",
            actor=actor,
        )
        view = card_view(card, now)
    log.info("prepaid card allocated", extra={"account_id": account_id, "card_id": view["id"]})
    return view


def list_prepaid_cards(db: Database, clock: Clock, account_id: str) -> list[dict]:
    """Return an account's prepaid cards, oldest first."""
    now = clock.now()
    with db.sessions() as session:
        existing_account(session, account_id)
        cards = session.execute(
            select(PrepaidCard).where(PrepaidCard.account_id == account_id).order_by(PrepaidCard.id)
        ).scalars()
        return [card_view(card, now) for card in cards]
