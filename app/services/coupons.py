"""Coupons: allocation by an administrator, activation codes, activation, listing."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError

from ..adapters.db import Database
from ..adapters.db.models import Account, ActivationFailure, Coupon, CouponCode
from ..domain.activation_codes import derive_code, generate_code, hash_code
from ..domain.errors import Conflict, InvalidInput, NotFound, RateLimited
from .accounts import existing_account
from .clock import Clock
from .locks import lock_account, lock_token
from .units import coupon_view, grant_coupon, recorded_unit

log = logging.getLogger(__name__)

MAX_CODES_PER_REQUEST = 1000
GUESS_LIMIT = 10
GUESS_WINDOW = timedelta(hours=1)


def check_window(valid_from: datetime, expires_at: datetime, now: datetime) -> None:
    """Refuse an empty validity window or one that has already ended."""
    if expires_at <= valid_from:
        raise InvalidInput(
            "expires_at must be after valid_from", code="invalid_window", field="expires_at"
        )
    if expires_at <= now:
        raise InvalidInput(
            "expires_at must be in the future", code="invalid_window", field="expires_at"
        )


def allocate_coupon(
    db: Database,
    clock: Clock,
    *,
    account_id: str,
    face_value_fen: int,
    valid_from: datetime | None,
    expires_at: datetime,
    actor: str,
    request_key: str | None = None,
) -> dict:
    """Give an account a regular coupon, funded by a grant posting.

    ``request_key`` (the client's idempotency key, digested) keys the grant in the ledger: a
    repeated request finds the coupon it gave instead of giving another, even when the first
    one's answer was lost with its process.
    """
    now = clock.now()
    valid_from = valid_from or now
    check_window(valid_from, expires_at, now)
    key = f"coupon-grant:request:{request_key}" if request_key is not None else None
    with db.transaction() as session:
        account = _lock_referenced_account(session, account_id)
        given = recorded_unit(
            session, key, Coupon, account_id=account_id, face_value_fen=face_value_fen, expires_at=expires_at
        )
        if given is not None:
            return coupon_view(given, now)
        coupon = grant_coupon(
            session,
            account,
            kind="regular",
            face_value_fen=face_value_fen,
            valid_from=valid_from,
            expires_at=expires_at,
            origin="allocation",
            now=now,
            key=key,
            actor=actor,
        )
        view = coupon_view(coupon, now)
    log.info("coupon allocated", extra={"account_id": account_id, "coupon_id": view["id"]})
    return view


def issue_codes(
    db: Database,
    clock: Clock,
    *,
    secret_key: str,
    count: int,
    face_value_fen: int,
    valid_from: datetime | None,
    expires_at: datetime,
    actor: str,
    seed: str | None = None,
) -> list[str]:
    """Create ``count`` activation codes for regular coupons; only their keyed hashes are kept.

    With a ``seed`` (an idempotent request) the codes are derived from it under the secret
    key, so a replay can show the same codes again without anyone storing them.
    """
    if not 1 <= count <= MAX_CODES_PER_REQUEST:
        raise InvalidInput(
            f"count must be 1 to {MAX_CODES_PER_REQUEST}", code="invalid_field", field="count"
        )
    now = clock.now()
    valid_from = valid_from or now
    check_window(valid_from, expires_at, now)
    key = secret_key.encode("utf-8")
    if seed is None:
        codes = [generate_code() for _ in range(count)]
    else:
        codes = derive_codes(secret_key, seed, count)
    try:
        with db.transaction() as session:
            session.add_all(
                CouponCode(
                    code_hash=hash_code(key, code),
                    kind="regular",
                    face_value_fen=face_value_fen,
                    valid_from=valid_from,
                    expires_at=expires_at,
                    created_at=now,
                    created_by=actor,
                )
                for code in codes
            )
    except IntegrityError as exc:
        if seed is not None and _issued_already(db, key, codes):
            # This request ran before and its answer was lost: show the codes it issued.
            log.info("activation codes shown again", extra={"count": count, "actor": actor})
            return codes
        # Two equal codes out of ~77 bits each would mean a broken random source.
        raise Conflict("could not issue unique codes; try again", code="code_collision") from exc
    log.info("activation codes issued", extra={"count": count, "actor": actor})
    return codes


def _issued_already(db: Database, key: bytes, codes: list[str]) -> bool:
    """Whether every one of ``codes`` exists: derived from one seed, they were issued together."""
    hashes = [hash_code(key, code) for code in codes]
    with db.sessions() as session:
        found = session.scalar(select(func.count()).select_from(CouponCode).where(CouponCode.code_hash.in_(hashes)))
    return found == len(codes)


def replay_codes(db: Database, *, secret_key: str, seed: str, count: int) -> list[str]:
    """The codes an idempotent issuing request with ``seed`` issued, derived again.

    Derived under another SECRET_KEY than the one they were issued under (the key was changed
    since), they would be codes that were never issued: refused instead of shown.
    """
    codes = derive_codes(secret_key, seed, count)
    if not _issued_already(db, secret_key.encode("utf-8"), codes):
        raise Conflict(
            "the codes this request issued cannot be shown again: SECRET_KEY changed since they were issued",
            code="activation_codes_not_shown",
        )
    return codes


def derive_codes(secret_key: str, seed: str, count: int) -> list[str]:
    """Return the codes an idempotent issuing request with ``seed`` creates (and recreates)."""
    key = secret_key.encode("utf-8")
    return [derive_code(key, f"activation-code:{seed}:{index}") for index in range(count)]


def activate_coupon(
    db: Database,
    clock: Clock,
    *,
    secret_key: str,
    account_id: str,
    code: str,
    token_id: int,
    actor: str,
) -> dict:
    """Redeem an activation code for an account; wrong guesses are counted and limited.

    A wrong code changes nothing but the failure count, which is committed before the error
    is raised so that it holds across processes and hosts.
    """
    now = clock.now()
    code_hash = hash_code(secret_key.encode("utf-8"), code)
    with db.transaction() as session:
        account = lock_account(session, account_id)
        # Locks serialise the count-then-act below per account and per token.
        lock_token(session, token_id)
        _refuse_when_limited(session, account_id, token_id, now)
        row = session.execute(
            select(CouponCode).where(CouponCode.code_hash == code_hash).with_for_update()
        ).scalar_one_or_none()
        failure = _why_unusable(row, now, account_id)
        if failure is not None:
            # A wrong guess counts towards the limit; entering a code this account already
            # redeemed (a form sent twice, say) is no guess.
            if not _redeemed_by(row, account_id):
                session.add(
                    ActivationFailure(
                        account_id=account_id, token_id=token_id, reason=failure.code, attempted_at=now
                    )
                )
        else:
            coupon = grant_coupon(
                session,
                account,
                kind=row.kind,
                face_value_fen=row.face_value_fen,
                valid_from=row.valid_from,
                expires_at=row.expires_at,
                origin="code",
                origin_ref=f"code:{row.id}",
                now=now,
                key=f"coupon-code:{row.id}",
                actor=actor,
            )
            row.redeemed_at = now
            row.redeemed_account_id = account_id
            row.coupon_id = coupon.id
            view = coupon_view(coupon, now)
    if failure is not None:
        log.info("coupon activation refused", extra={"account_id": account_id, "reason": failure.code})
        raise failure
    log.info("coupon activated", extra={"account_id": account_id, "coupon_id": view["id"]})
    return view


def list_coupons(db: Database, clock: Clock, account_id: str) -> list[dict]:
    """Return an account's coupons, oldest first."""
    now = clock.now()
    with db.sessions() as session:
        existing_account(session, account_id)
        coupons = session.execute(
            select(Coupon).where(Coupon.account_id == account_id).order_by(Coupon.id)
        ).scalars()
        return [coupon_view(coupon, now) for coupon in coupons]


def _lock_referenced_account(session, account_id: str) -> Account:
    try:
        return lock_account(session, account_id)
    except NotFound as exc:
        # The account is named in the body, not the path: an unknown value there is a 422.
        raise InvalidInput(exc.detail, code="unknown_account", field="account_id") from exc


def _refuse_when_limited(session, account_id: str, token_id: int, now: datetime) -> None:
    since = now - GUESS_WINDOW
    by_account, by_token = session.execute(
        select(
            func.coalesce(func.sum(case((ActivationFailure.account_id == account_id, 1), else_=0)), 0),
            func.coalesce(func.sum(case((ActivationFailure.token_id == token_id, 1), else_=0)), 0),
        ).where(
            ActivationFailure.attempted_at > since,
            (ActivationFailure.account_id == account_id) | (ActivationFailure.token_id == token_id),
        )
    ).one()
    if by_account >= GUESS_LIMIT or by_token >= GUESS_LIMIT:
        log.warning(
            "coupon activation rate limited",
            extra={"account_id": account_id, "token_id": token_id},
        )
        raise RateLimited(
            f"too many wrong activation codes; try again within {GUESS_WINDOW.seconds // 60} minutes",
            code="too_many_activation_attempts",
        )


def purge_activation_failures(db: Database, clock: Clock, *, retention: timedelta) -> int:
    """Forget wrong activation guesses older than ``retention`` (never within ``GUESS_WINDOW``,
    which the limit counts); return how many."""
    cutoff = clock.now() - max(retention, GUESS_WINDOW)
    with db.transaction() as session:
        return session.execute(delete(ActivationFailure).where(ActivationFailure.attempted_at < cutoff)).rowcount


def _redeemed_by(row: CouponCode | None, account_id: str) -> bool:
    return row is not None and row.redeemed_at is not None and row.redeemed_account_id == account_id


def _why_unusable(row: CouponCode | None, now: datetime, account_id: str) -> InvalidInput | None:
    if row is None:
        return InvalidInput("this activation code is unknown", code="activation_code_unknown")
    if _redeemed_by(row, account_id):
        return InvalidInput(
            "this activation code has already been activated for this account; its coupon is in the wallet",
            code="activation_code_used",
        )
    if row.redeemed_at is not None:
        return InvalidInput("this activation code has been used", code="activation_code_used")
    if row.expires_at <= now:
        return InvalidInput("this activation code has expired", code="activation_code_expired")
    return None
