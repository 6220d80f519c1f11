"""API tokens: created by operators, stored hashed, checked on every request."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from ..adapters.db import Database
from ..adapters.db.models import ApiToken
from ..domain.errors import InvalidInput
from .accounts import existing_account
from .clock import Clock

ROLES = ("admin", "finance", "account")
PREFIX = "wlt_"
MAX_LABEL = 200  # the column's length


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
