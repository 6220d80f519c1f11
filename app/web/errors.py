"""The one place where errors become HTTP answers: ``application/problem+json``."""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..adapters.db.errors import is_passing_failure
from ..domain.errors import DomainError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, code: str, **extra) -> Response:
    """Build a problem+json response."""
    body = {"type": "about:blank", "status": status, "title": title, "detail": detail, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM)
    # A detail may quote what the request sent (an id from the path, a file's line): never HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def domain_problem(exc: DomainError) -> Response:
    response = problem(exc.status, exc.title, exc.detail, exc.code, **exc.extra)
    if exc.status == 401:
        # RFC 6750: a 401 names the scheme it wants, and says when the token sent was the fault.
        response.headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if exc.code == "invalid_token" else "Bearer"
        )
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        if exc.status >= 500:
            log.warning("gateway or upstream failure", extra={"code": exc.code, "path": request.path})
        return domain_problem(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = problem(exc.code or 500, exc.name, exc.description or exc.name, code)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_passing_failure(exc):
            # The connection broke, or the transaction lost a race or timed out: the request
            # may go through when sent again (with the same Idempotency-Key, if it had one).
            reason = str(getattr(exc, "orig", None) or exc).strip().partition("\n")[0][:200]
            log.warning("database failure", extra={"path": request.path, "error": type(exc).__name__, "reason": reason})
            response = problem(
                503,
                "Service unavailable",
                "the database could not complete the request just now; send it again",
                "database_unavailable",
            )
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error", extra={"path": request.path})
        return problem(500, "Internal error", "the server could not complete the request", "internal_error")
