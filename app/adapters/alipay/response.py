"""Locate the signed part of a synchronous gateway response, exactly as it was received.

Alipay signs the raw text of the ``<method_with_underscores>_response`` value, from its ``{``
to the matching ``}``. Re-serialising the parsed JSON changes escaped slashes, spacing and
key order and breaks the signature; counting braces naively (as python-alipay-sdk does) is
fooled by a ``}`` inside a string value, and searching for the key name anywhere in the text
is fooled by that name appearing inside a value. So the top-level object is walked with the
JSON scanner itself, which knows where every string and value starts and ends.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class MalformedResponse(ValueError):
    """The gateway's answer is not the JSON object Alipay sends."""


@dataclass(frozen=True)
class TopLevelMember:
    raw: str  # the value's text exactly as received
    value: object  # the same value, parsed


def response_key(method: str) -> str:
    """Return the response member name of a method: ``alipay.trade.query -> alipay_trade_query_response``."""
    return method.replace(".", "_") + "_response"


def top_level_members(text: str) -> dict[str, TopLevelMember]:
    """Split a JSON object into its members, keeping each value's raw text; refuse duplicates."""
    if not isinstance(text, str):
        raise MalformedResponse("response text must be str")
    index = _skip_ws(text, 0)
    if text[index : index + 1] != "{":
        raise MalformedResponse("response is not a JSON object")
    index = _skip_ws(text, index + 1)
    members: dict[str, TopLevelMember] = {}
    if text[index : index + 1] == "}":
        return _finish(text, index + 1, members)
    while True:
        if text[index : index + 1] != '"':
            raise MalformedResponse("expected a member name")
        key, index = _scan(text, index)
        index = _skip_ws(text, index)
        if text[index : index + 1] != ":":
            raise MalformedResponse("expected ':' after a member name")
        start = _skip_ws(text, index + 1)
        value, end = _scan(text, start)
        if key in members:
            # Which copy was signed, which one would a JSON parser keep? Trust neither.
            raise MalformedResponse("response repeats a top-level member")
        members[key] = TopLevelMember(raw=text[start:end], value=value)
        index = _skip_ws(text, end)
        separator = text[index : index + 1]
        if separator == ",":
            index = _skip_ws(text, index + 1)
        elif separator == "}":
            return _finish(text, index + 1, members)
        else:
            raise MalformedResponse("expected ',' or '}' between members")


def _scan(text: str, index: int) -> tuple[object, int]:
    try:
        return _DECODER.raw_decode(text, index)
    except json.JSONDecodeError:
        raise MalformedResponse("response is not valid JSON") from None
    except RecursionError:
        # Nested deeper than the parser goes: no answer of Alipay's nests like that.
        raise MalformedResponse("response is nested too deeply") from None


def _skip_ws(text: str, index: int) -> int:
    return _WS.match(text, index).end()


def _finish(text: str, index: int, members: dict[str, TopLevelMember]) -> dict[str, TopLevelMember]:
    if _skip_ws(text, index) != len(text):
        raise MalformedResponse("unexpected text after the JSON object")
    return members
