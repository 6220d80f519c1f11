"""Browser sessions for the pages: who is signed in, role guards and CSRF tokens.

The session cookie (signed with SECRET_KEY) holds the token's id, role and account, the
session's random id and a CSRF token; never the API token itself. Every page request re-reads
the session's row and the token, so signing out or revoking the token ends it, even for a copy
of the cookie; the cookie's signature expires with the session's lifetime.
"""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from ..services.sessions import end_page_session, open_page_session, session_principal
from ..services.tokens import Principal

CSRF_FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
HOMES = {"account": "/billing/", "finance": "/finance/", "admin": "/finance/"}


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the signer for requests that bring no cookie.

    Flask builds a signing serializer for every request, before it looks for a cookie; the
    API, Alipay's callbacks and the health checks never send one (about 2% of a notify's CPU).
    With a cookie, or once a page writes to the session, it is Flask's own code.
    """

    def open_session(self, app: Flask, request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def start_session(principal: Principal) -> None:
    """Replace whatever the cookie held with a fresh session for ``principal``."""
    end_session()
    wallet = current_app.extensions["wallet"]
    session["sid"] = open_page_session(wallet.db, wallet.clock, principal)
    session["token_id"] = principal.token_id
    session["role"] = principal.role
    session["account_id"] = principal.account_id
    session["csrf"] = secrets.token_urlsafe(32)


def end_session() -> None:
    """Sign out: end the session's row, so no copy of its cookie opens it again, and forget it."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        wallet = current_app.extensions["wallet"]
        end_page_session(wallet.db, wallet.clock, session_id)
    session.clear()


def csrf_token() -> str:
    """Return this session's CSRF token, creating one for a visitor without a session."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Refuse (400) a POST whose form does not carry this session's CSRF token."""
    if request.method != "POST":
        return
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "The form has expired or did not come from this site. Please try again.")


# Scripts, styles and images from this service only, none inline: markup that slipped into a
# page (a name, a memo, a bank's text) could not run, load anything, or post a form elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def page_headers(response: Response) -> Response:
    """What every page of ours answers with: never cached, never framed, never sniffed, no
    script but ours."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def page_principal() -> Principal | None:
    """Return the signed-in principal while its token is still valid, else None."""
    if "principal" in g:
        return g.principal
    principal = None
    token_id, session_id = session.get("token_id"), session.get("sid")
    if isinstance(token_id, int) or "sid" in session:
        found = None
        if isinstance(token_id, int) and isinstance(session_id, str):
            w = current_app.extensions["wallet"]
            found = session_principal(w.db, w.clock, token_id, session_id)
        if found is not None and (found.role, found.account_id) == (session.get("role"), session.get("account_id")):
            principal = found
        else:
            session.clear()
    g.principal = principal
    return principal


def home_for(principal: Principal) -> str:
    return HOMES.get(principal.role, "/login")


def safe_next(target: str | None, principal: Principal) -> str | None:
    """Return ``target`` when it is a path inside the principal's own area, else None."""
    if not target or "\\" in target or any(ord(ch) < 33 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return None
    return target if target.startswith(home_for(principal)) else None


def guard(blueprint: Blueprint, *, roles: tuple[str, ...] | None, others_to_home: bool = False) -> None:
    """Install the sign-in, role and CSRF checks and the page headers on ``blueprint``.

    ``roles`` None: no sign-in needed (the login form). Other roles get 403, or with
    ``others_to_home`` a redirect to their own home page.
    """

    @blueprint.before_request
    def _guard():
        # A page form is a few short fields; anyone may post to the sign-in form, and no page
        # takes an upload, so a larger body is refused (413) before any of it is read or spooled.
        request.max_content_length = MAX_FORM_BYTES
        if roles is not None:
            principal = page_principal()
            if principal is None:
                target = request.path if request.method == "GET" else None
                return redirect(url_for("login.login_form", next=target))
            if principal.role not in roles:
                if others_to_home:
                    return redirect(home_for(principal))
                abort(403, "This page is not available to your role.")
        check_csrf()
        return None

    blueprint.after_request(page_headers)

    for status in (400, 403, 404, 405, 413):
        blueprint.register_error_handler(status, _error_page)


def _error_page(exc):
    return render_template("page_error.html", status=exc.code, title=exc.name, message=exc.description), exc.code
