"""Bearer-token authentication and role checks for the JSON API."""
from __future__ import annotations

from functools import wraps

from flask import current_app, g, request

from ..domain.errors import Forbidden, Unauthorized
from ..services.tokens import Principal, authenticate


def current_principal() -> Principal:
    """Return the caller of this request, or raise 401."""
    principal = g.get("principal")
    if principal is not None:
        return principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", code="missing_token")
    principal = authenticate(current_app.extensions["wallet"].db, token.strip())
    if principal is None:
        raise Unauthorized("the token is not valid", code="invalid_token")
    g.principal = principal
    return principal


def require(*roles: str, account_arg: str | None = None):
    """Allow ``roles`` (admin always); the ``account`` role only for its own account.

    With ``account_arg`` the account is the named view argument; without it the view must
    check ownership of what it returns.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal.role == "admin":
                return view(*args, **kwargs)
            if principal.role == "account" and "account" in roles:
                # Without an account in the URL, the view itself checks what the token owns.
                if account_arg is None or kwargs.get(account_arg) == principal.account_id:
                    return view(*args, **kwargs)
                raise Forbidden("this token may only use its own account", code="other_account")
            if principal.role in roles and principal.role != "account":
                return view(*args, **kwargs)
            raise Forbidden("this token's role may not do this", code="wrong_role")

        return wrapper

    return decorator
