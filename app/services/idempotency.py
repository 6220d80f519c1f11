"""Replaying POSTs made with an ``Idempotency-Key``: first response stored, reused after."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..adapters.db import Database
from ..adapters.db.errors import is_passing_failure
from ..adapters.db.models import IdempotentRequest
from ..domain.errors import Conflict, InvalidInput
from .clock import Clock

# A request still "in progress" after this long died with its process; the key may be reused.
ABANDONED_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str


def begin(
    db: Database, clock: Clock, *, scope: str, key: str, method: str, path: str, request_hash: str
) -> StoredResponse | None:
    """Claim ``key`` for this request; return the stored response if it already ran.

    Raises 422 when the key was used with another request, 409 while it is still running.
    """
    if not key or len(key) > 200 or "\x00" in key:
        raise InvalidInput(
            "Idempotency-Key must be 1 to 200 characters, without NUL", code="invalid_idempotency_key"
        )
    now = clock.now()
    # A request that failed releases its key (``finish``): between this claim failing and the
    # read below, the row may be gone again. Then the key is free: claim it once more.
    for _ in range(3):
        if _claim(db, scope=scope, key=key, method=method, path=path, request_hash=request_hash, now=now):
            return None
        with db.transaction() as session:
            row = session.execute(
                select(IdempotentRequest).where(
                    IdempotentRequest.scope == scope, IdempotentRequest.key == key
                )
            ).scalar_one_or_none()
            if row is None:
                continue
            if row.request_hash != request_hash or row.method != method or row.path != path:
                raise key_reused()
            if row.state == "done":
                return StoredResponse(row.response_status, row.response_body or b"", row.response_content_type or "")
            if now - row.created_at < ABANDONED_AFTER:
                raise _in_progress()
            taken = session.execute(
                update(IdempotentRequest)
                .where(IdempotentRequest.id == row.id, IdempotentRequest.created_at == row.created_at)
                .values(created_at=now)
            ).rowcount
            if not taken:
                raise _in_progress()
            return None
    raise _in_progress()


def _claim(db: Database, *, scope: str, key: str, method: str, path: str, request_hash: str, now) -> bool:
    try:
        with db.transaction() as session:
            session.add(
                IdempotentRequest(
                    scope=scope,
                    key=key,
                    method=method,
                    path=path,
                    request_hash=request_hash,
                    state="in_progress",
                    created_at=now,
                )
            )
        return True
    except IntegrityError:
        return False


def _in_progress() -> Conflict:
    return Conflict("a request with this Idempotency-Key is still in progress", code="idempotency_in_progress")


def key_reused() -> InvalidInput:
    return InvalidInput(
        "this Idempotency-Key was used with a different request", code="idempotency_key_reused"
    )


def finish(db: Database, *, scope: str, key: str, response: StoredResponse) -> None:
    """Store the response of a claimed request; a server error releases the key instead.

    Both are the same whenever they happen, so a passing failure (often the connection that
    failed the request, broken with its neighbours) is met by doing it once more: a key left
    claimed would answer its retries 409 for ABANDONED_AFTER.
    """
    try:
        _finish(db, scope=scope, key=key, response=response)
    except Exception as exc:
        if not is_passing_failure(exc):
            raise
        _finish(db, scope=scope, key=key, response=response)


def _finish(db: Database, *, scope: str, key: str, response: StoredResponse) -> None:
    with db.transaction() as session:
        where = (IdempotentRequest.scope == scope, IdempotentRequest.key == key)
        if response.status >= 500:
            session.execute(delete(IdempotentRequest).where(*where))
            return
        session.execute(
            update(IdempotentRequest)
            .where(*where)
            .values(
                state="done",
                response_status=response.status,
                response_body=response.body,
                response_content_type=response.content_type,
            )
        )
