"""The finance console: what needs a person's review."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from ..services.finance_console import notifies_for_review
from .page_session import guard

finance = Blueprint("finance", __name__, url_prefix="/finance")
guard(finance, roles=("finance", "admin"))


@finance.get("/")
def console():
    notifies, notifies_total = notifies_for_review(current_app.extensions["wallet"].db)
    return render_template("finance/console.html", notifies=notifies, notifies_total=notifies_total)


@finance.route("/<path:_rest>", methods=["GET", "POST"])
def unknown(_rest: str):
    """Answer unknown finance pages after the sign-in check, so none is visible without one."""
    abort(404)
