"""Signing in to the pages with an API token, and signing out."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, redirect, render_template, request

from ..services.sessions import sign_in
from .page_session import end_session, guard, home_for, page_principal, safe_next, start_session

log = logging.getLogger(__name__)
login = Blueprint("login", __name__)
guard(login, roles=None)


@login.get("/login")
def login_form():
    principal = page_principal()
    if principal is not None:
        return redirect(safe_next(request.args.get("next"), principal) or home_for(principal))
    return render_template("login.html", error=None, next=request.args.get("next", ""))


@login.post("/login")
def login_submit():
    principal = sign_in(current_app.extensions["wallet"].db, request.form.get("token", ""))
    next_target = request.form.get("next", "")
    if principal is None:
        log.info("page sign-in refused")
        return render_template("login.html", error="That token is not valid.", next=next_target), 401
    start_session(principal)
    log.info("page sign-in", extra={"token_id": principal.token_id, "role": principal.role})
    return redirect(safe_next(next_target, principal) or home_for(principal))


@login.post("/logout")
def logout():
    end_session()
    return redirect("/login")
