"""The finance console: what needs a person's review, and the bank statement lines by status."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request

from ..services.finance_console import notifies_for_review
from ..services.reconcile import STATUSES
from ..services.statement_lines import list_lines
from .inputs import query_number
from .page_session import guard

finance = Blueprint("finance", __name__, url_prefix="/finance")
guard(finance, roles=("finance", "admin"))

LINES_PER_PAGE = 100


@finance.get("/")
def console():
    db = current_app.extensions["wallet"].db
    status = request.args.get("status") if request.args.get("status") in STATUSES else "unmatched"
    notifies, notifies_total = notifies_for_review(db)
    lines, next_after = list_lines(db, status=status, after_id=query_number("after"), limit=LINES_PER_PAGE)
    return render_template(
        "finance/console.html",
        notifies=notifies,
        notifies_total=notifies_total,
        statuses=STATUSES,
        status=status,
        lines=lines,
        next_after=next_after,
    )


@finance.route("/<path:_rest>", methods=["GET", "POST"])
def unknown(_rest: str):
    """Answer unknown finance pages after the sign-in check, so none is visible without one."""
    abort(404)
