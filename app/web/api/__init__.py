"""The JSON API, version 1."""
from flask import Blueprint, Response

api = Blueprint("api", __name__, url_prefix="/api/v1")


@api.after_request
def _never_stored_or_sniffed(response: Response) -> Response:
    """Answers hold balances, ledgers and activation codes: no cache keeps them, and no browser
    reads one (a problem quoting a request's text, say) as anything but what it says it is."""
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
