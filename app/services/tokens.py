"""API tokens: created by operators, stored hashed, checked on every request."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from ..adapters.db import Database
from ..adapters.db.models import ApiToken
from ..domain.errors import InvalidInput
from .accounts import existing_account
from .clock import Clock

ROLES = ("admin", "finance", "account")
PREFIX = "wlt_"
MAX_LABEL = ApiToken.__table__.c.label.type.length


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, role and (for the account role) its account."""

    token_id: int
    role: str
    account_id: str | None

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    db: Database, clock: Clock, *, role: str, account_id: str | None = None, label: str = ""
) -> str:
    """Create a token and return it in plain text; only its hash is stored."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    if (role == "account") != bool(account_id):
        raise InvalidInput(
            "the account role needs --account, and only it", code="invalid_token_account"
        )
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"the label must be at most {MAX_LABEL} characters", code="invalid_label")
    token = PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as session:
        if account_id:
            existing_account(session, account_id)
        session.add(
            ApiToken(
                token_hash=hash_token(token),
                role=role,
                account_id=account_id,
                label=label,
                created_at=clock.now(),
            )
        )
    return token


def authenticate(db: Database, token: str) -> Principal | None:
    """Return the principal of a valid, unrevoked token, or None."""
    if not token or len(token) > 200 or not token.startswith(PREFIX):
        return None
    with db.sessions() as session:
        row = session.execute(
            select(ApiToken.id, ApiToken.role, ApiToken.account_id).where(
                ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, role=row.role, account_id=row.account_id)


@dataclass(frozen=True)
class TokenView:
    """A token as operators see it: never the token itself, which is not stored."""

    id: int
    role: str
    account_id: str | None
    label: str
    created_at: datetime
    revoked_at: datetime | None


def list_tokens(db: Database) -> list[TokenView]:
    """Return every token, oldest first."""
    with db.sessions() as session:
        rows = session.execute(
            select(
                ApiToken.id,
                ApiToken.role,
                ApiToken.account_id,
                ApiToken.label,
                ApiToken.created_at,
                ApiToken.revoked_at,
            ).order_by(ApiToken.id)
        ).all()
    return [TokenView(*row) for row in rows]


def revoke_token(db: Database, clock: Clock, token_id: int) -> bool:
    """Revoke a token: the API refuses it (401) and the page sessions opened with it end.

    Return False when no unrevoked token has that id.
    """
    with db.transaction() as session:
        revoked = session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        ).rowcount
    return bool(revoked)
