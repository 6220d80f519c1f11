"""Liveness and readiness probes."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz():
    return jsonify(status="ok")


@health.get("/readyz")
def readyz():
    try:
        with current_app.extensions["wallet"].db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        return jsonify(status="database unavailable"), 503
    return jsonify(status="ok")
