"""The ``Idempotency-Key`` header on POST endpoints."""
from __future__ import annotations

import hashlib
from functools import wraps

from flask import Response, current_app, request

from ..domain.errors import DomainError
from ..services import idempotency
from .auth import current_principal
from .errors import domain_problem


def idempotent(view):
    """Replay the first response for a repeated key; refuse a key reused for another body."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        wallet = current_app.extensions["wallet"]
        scope = current_principal().actor
        body = request.get_data(cache=True)
        request_hash = hashlib.sha256(body).hexdigest()
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
