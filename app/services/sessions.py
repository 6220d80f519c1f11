"""Signed-in browser sessions: which token a session stands for, checked on every page."""
from __future__ import annotations

from sqlalchemy import select

from ..adapters.db import Database
from ..adapters.db.models import ApiToken
from .tokens import Principal, authenticate


def sign_in(db: Database, token: str) -> Principal | None:
    """Return the principal of a pasted API token, or None when it is not valid."""
    return authenticate(db, (token or "").strip())


def session_principal(db: Database, token_id: int) -> Principal | None:
    """Return the principal of a session's token while it is unrevoked, else None."""
    with db.sessions() as session:
        row = session.execute(
            select(ApiToken.id, ApiToken.role, ApiToken.account_id).where(
                ApiToken.id == token_id, ApiToken.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, role=row.role, account_id=row.account_id)
