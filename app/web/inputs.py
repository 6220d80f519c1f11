"""Reading request bodies strictly: 400 for what is not JSON, 422 for bad fields."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from flask import request
from werkzeug.exceptions import BadRequest

from ..domain.errors import InvalidInput
from ..domain.money import parse_amount

MAX_JSON = 64 * 1024


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def json_body() -> dict:
    """Return the request's JSON object; 400 when it is not JSON, 422 when not an object."""
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON:
        raise InvalidInput("the body is too large", code="body_too_large")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("the body is not valid JSON") from exc
    except RecursionError as exc:
        # Valid JSON, but nested deeper than the parser goes; no request body nests at all.
        raise InvalidInput("the body is nested too deeply", code="invalid_body") from exc
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    return body


def required_str(body: dict, name: str, *, max_length: int = 200, allow_empty=False) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidInput(f"{name} is required", code="missing_field", field=name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", code="invalid_field", field=name)
    value = value.strip()
    if (not value and not allow_empty) or len(value) > max_length:
        raise InvalidInput(
            f"{name} must be 1 to {max_length} characters", code="invalid_field", field=name
        )
    return storable_text(value, name)


def storable_text(value: str, name: str) -> str:
    """Refuse text no database can keep: NUL (PostgreSQL text) or a lone surrogate (UTF-8)."""
    if "\x00" in value or _has_surrogate(value):
        raise InvalidInput(
            f"{name} contains a NUL or an unpaired surrogate character",
            code="invalid_field",
            field=name,
        )
    return value


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def optional_str(body: dict, name: str, *, max_length: int = 200) -> str | None:
    if body.get(name) is None:
        return None
    return required_str(body, name, max_length=max_length)


def required_choice(body: dict, name: str, choices: tuple[str, ...]) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidInput(f"{name} is required", code="missing_field", field=name)
    if value not in choices:
        raise InvalidInput(
            f"{name} must be one of {', '.join(choices)}", code="invalid_field", field=name
        )
    return value


def required_amount(body: dict, name: str = "amount") -> int:
    if body.get(name) is None:
        raise InvalidInput(f"{name} is required", code="missing_field", field=name)
    return parse_amount(body[name], field=name)


def required_datetime(body: dict, name: str) -> datetime:
    value = required_str(body, name, max_length=40)
    return parse_timestamp(value, name)


def optional_datetime(body: dict, name: str) -> datetime | None:
    if body.get(name) is None:
        return None
    return required_datetime(body, name)


def parse_timestamp(value: str, name: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries an offset."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            f"{name} must be an ISO 8601 timestamp with offset", code="invalid_field", field=name
        ) from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{name} must carry a UTC offset", code="invalid_field", field=name)
    try:
        # Instants are stored and compared in UTC; near year 1 or 9999 an offset can push
        # the UTC instant outside what a datetime holds.
        return parsed.astimezone(timezone.utc)
    except OverflowError as exc:
        raise InvalidInput(f"{name} is out of range", code="invalid_field", field=name) from exc


def query_number(name: str) -> int | None:
    """A whole number from the query string (a page's position or size), or None when absent
    or not one.

    Only ASCII digits (``isdigit`` alone admits "²", which ``int`` cannot read), and fewer than
    19 of them: every such number fits a BIGINT id, and ``int`` never meets its 4,300-digit
    limit.
    """
    raw = request.args.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
