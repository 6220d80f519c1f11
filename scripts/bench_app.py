"""The real application plus one benchmark-only route, for ``scripts/bench_notify.py``.

``/bench/echo`` reads a form POST and answers ``success``: the same server, workers and
framework as the notify, without verification or database work. It exists only here, never
in the service's own routes.
"""
from __future__ import annotations

from flask import Response, request

from app import create_app

app = create_app()


@app.post("/bench/echo")
def bench_echo():
    request.form  # parse the form body, as a real form handler would
    return Response("success", mimetype="text/plain")
