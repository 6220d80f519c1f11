"""The one place where errors become HTTP answers: ``application/problem+json``."""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

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
    return problem(exc.status, exc.title, exc.detail, exc.code, **exc.extra)


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
        log.exception("unhandled error", extra={"path": request.path})
        return problem(500, "Internal error", "the server could not complete the request", "internal_error")
