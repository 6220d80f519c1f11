"""Signed-in browser sessions: which token a session stands for, checked on every page.

Each session has a row keyed by the hash of a random id that only its cookie holds; signing out
ends the row, so no copy of the cookie opens the session again.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import and_, delete, not_, select, update

from ..adapters.db import Database
from ..adapters.db.models import ApiToken, PageSession
from .clock import Clock
from .tokens import Principal, authenticate

# A page session lasts a working day from signing in (the cookie's signature carries its age),
# not Flask's default 31 days.
PAGE_SESSION_LIFETIME = timedelta(hours=12)


def sign_in(db: Database, token: str) -> Principal | None:
    """Return the principal of a pasted API token, or None when it is not valid."""
    return authenticate(db, (token or "").strip())


def open_page_session(db: Database, clock: Clock, principal: Principal) -> str:
    """Record a new session for ``principal`` and return its id, for the cookie alone."""
    session_id = secrets.token_urlsafe(32)
    with db.transaction() as session:
        session.add(
            PageSession(id_hash=_hash(session_id), token_id=principal.token_id, created_at=clock.now())
        )
    return session_id


def end_page_session(db: Database, clock: Clock, session_id: str) -> None:
    """End a session: its cookie, or any copy of it, opens nothing from now on."""
    with db.transaction() as session:
        session.execute(
            update(PageSession)
            .where(PageSession.id_hash == _hash(session_id), PageSession.ended_at.is_(None))
            .values(ended_at=clock.now())
        )


def session_principal(db: Database, clock: Clock, token_id: int, session_id: str) -> Principal | None:
    """Return the principal of a session that was not ended, is younger than
    ``PAGE_SESSION_LIFETIME`` and whose token is unrevoked, else None.

    The cookie's signature carries its age too, but a cookie signed again later (anything
    written to the session re-signs it) would stretch that; the row's age does not move.
    """
    with db.sessions() as session:
        row = session.execute(
            select(ApiToken.id, ApiToken.role, ApiToken.account_id)
            .join(PageSession, PageSession.token_id == ApiToken.id)
            .where(
                PageSession.id_hash == _hash(session_id),
                _live(clock),
                ApiToken.id == token_id,
                ApiToken.revoked_at.is_(None),
            )
        ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, role=row.role, account_id=row.account_id)


def purge_page_sessions(db: Database, clock: Clock) -> int:
    """Forget the sessions that ended or outlived ``PAGE_SESSION_LIFETIME``; return how many.

    No cookie opens them any more: exactly the rows ``session_principal`` no longer accepts.
    """
    with db.transaction() as session:
        return session.execute(delete(PageSession).where(not_(_live(clock)))).rowcount


def _live(clock: Clock):
    """A session that was not ended and is younger than ``PAGE_SESSION_LIFETIME``."""
    return and_(PageSession.ended_at.is_(None), PageSession.created_at > clock.now() - PAGE_SESSION_LIFETIME)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()
