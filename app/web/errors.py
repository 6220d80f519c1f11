"""The one place where errors become HTTP answers: ``application/problem+json``, or for a
browser asking for one of our pages, an error page of ours."""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from ..adapters.db.errors import first_line, is_passing_failure
from ..domain.errors import DomainError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
# Answered for programs whatever they accept: the API, Alipay's callbacks, the sandbox, health checks.
PROGRAM_PATHS = ("/api/", "/alipay/", "/_sandbox/", "/healthz", "/readyz")
TRY_AGAIN = "We could not complete your request just now. Please try again in a moment."


def problem(status: int, title: str, detail: str, code: str, **extra) -> Response:
    """Build a problem+json response."""
    body = {"type": "about:blank", "status": status, "title": title, "detail": detail, "code": code}
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM)
    # A detail may quote what the request sent (an id from the path, a file's line): never HTML.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def wants_page() -> bool:
    """Whether the request is a browser's for a page (it prefers HTML to JSON), not a program's."""
    if request.path.startswith(PROGRAM_PATHS):
        return False
    return request.accept_mimetypes.best_match((PROBLEM, "application/json", "text/html")) == "text/html"


def error_page(status: int, title: str, message: str) -> Response:
    """Build our HTML error page, with the headers of every page of ours."""
    from .page_session import page_headers

    page = render_template("page_error.html", status=status, title=title, message=message)
    return page_headers(Response(page, status=status, mimetype="text/html"))


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
        if wants_page():
            if exc.status >= 500:
                return error_page(exc.status, "Service unavailable", TRY_AGAIN)
            return error_page(exc.status, exc.title, exc.detail)
        return domain_problem(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if wants_page():
            response = error_page(exc.code or 500, exc.name, exc.description or exc.name)
        else:
            response = problem(exc.code or 500, exc.name, exc.description or exc.name, code)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        if is_passing_failure(exc):
            # The connection broke, or the transaction lost a race or timed out: the request
            # may go through when sent again (with the same Idempotency-Key, if it had one).
            reason = first_line(exc)[:200]
            log.warning("database failure", extra={"path": request.path, "error": type(exc).__name__, "reason": reason})
            if wants_page():
                response = error_page(503, "Service unavailable", TRY_AGAIN)
            else:
                response = problem(
                    503,
                    "Service unavailable",
                    "the database could not complete the request just now; send it again",
                    "database_unavailable",
                )
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error", extra={"path": request.path})
        if wants_page():
            return error_page(500, "Something went wrong", "We could not complete your request. Please try again later.")
        return problem(500, "Internal error", "the server could not complete the request", "internal_error")
