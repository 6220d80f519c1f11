"""The ``Idempotency-Key`` header on POST endpoints."""
from __future__ import annotations

import hashlib
from functools import wraps

from flask import Response, current_app, request

from ..domain.errors import DomainError
from ..services import idempotency
from .auth import current_principal
from .errors import domain_problem


def request_key() -> str | None:
    """The request's ``Idempotency-Key`` with its caller, digested; None without one.

    For operations that key their own effect by it (a card purchase): a retry finds what the
    first request did even when that request's stored answer was lost with its process.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    return caller_key(key.strip())


def caller_key(key: str) -> str:
    """``key`` digested with the calling principal: two callers' keys never meet."""
    return hashlib.sha256(f"{current_principal().actor}\0{key}".encode()).hexdigest()


def _request_fingerprint() -> str:
    """Hash what the request says; a multipart body's random boundary is framing, not content."""
    if request.mimetype != "multipart/form-data":
        return hashlib.sha256(request.get_data(cache=True)).hexdigest()
    digest = hashlib.sha256()
    # A part without a name (werkzeug keys it ``None``) is hashed too, under its own tag,
    # and sorts first: comparing ``None`` with a name would raise.
    for name, value in sorted(request.form.items(multi=True), key=_named_first):
        tag = "field" if name is not None else "unnamed-field"
        digest.update(f"{tag}\0{name or ''}\0{value}\0".encode())
    for name, upload in sorted(request.files.items(multi=True), key=lambda item: _part_name(item[0])):
        content = upload.read()
        upload.seek(0)  # the view reads the file again
        tag = "file" if name is not None else "unnamed-file"
        digest.update(f"{tag}\0{name or ''}\0{upload.filename or ''}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def _part_name(name: str | None) -> tuple[bool, str]:
    return (name is not None, name or "")


def _named_first(item: tuple[str | None, str]) -> tuple[tuple[bool, str], str]:
    return (_part_name(item[0]), item[1])


def idempotent(view):
    """Replay the first response for a repeated key; refuse a key reused for another body."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        wallet = current_app.extensions["wallet"]
        scope = current_principal().actor
        request_hash = _request_fingerprint()
        stored = idempotency.begin(
            wallet.db,
            wallet.clock,
            scope=scope,
            key=key.strip(),
            method=request.method,
            path=request.path,
            request_hash=request_hash,
        )
        if stored is not None:
            response = Response(stored.body, status=stored.status, content_type=stored.content_type)
            response.headers["Idempotent-Replayed"] = "true"
            return response
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except DomainError as exc:
            response = domain_problem(exc)
        except Exception:
            idempotency.finish(
                wallet.db,
                scope=scope,
                key=key.strip(),
                response=idempotency.StoredResponse(500, b"", ""),
            )
            raise
        idempotency.finish(
            wallet.db,
            scope=scope,
            key=key.strip(),
            response=idempotency.StoredResponse(
                response.status_code, response.get_data(), response.content_type or ""
            ),
        )
        return response

    return wrapper
