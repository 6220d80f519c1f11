"""``GET /api/v1/openapi.json``: the service's own OpenAPI document, served as written."""
from __future__ import annotations

from functools import cache
from importlib.resources import files

from flask import Response

from .api import api


@cache
def document() -> bytes:
    """Return the OpenAPI document's bytes, read once from the package."""
    return files(__package__).joinpath("openapi.json").read_bytes()


@api.get("/openapi.json")
def openapi_document():
    """The document describes the public API, so it needs no token."""
    return Response(document(), mimetype="application/json")
