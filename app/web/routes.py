"""Every blueprint of the service, registered in one place."""
from __future__ import annotations

from flask import Flask
from werkzeug.routing import UnicodeConverter


class SegmentConverter(UnicodeConverter):
    """The default ``<name>`` converter, refusing NUL: no id holds one, and PostgreSQL text
    cannot even be compared with one, so such a path is a 404 like any unknown one."""

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]", 1)


def register_routes(app: Flask) -> None:
    app.url_map.converters["default"] = app.url_map.converters["string"] = SegmentConverter
    from .api import api
    from .api import accounts, topups  # noqa: F401 - registers the views on ``api``
    from .api import bills, coupons, prepaid_cards  # noqa: F401 - registers the views on ``api``
    from .api import statements  # noqa: F401 - registers the views on ``api``
    from . import openapi  # noqa: F401 - registers GET /api/v1/openapi.json on ``api``
    from .alipay import alipay
    from .billing import billing
    from .checkout import pages
    from .finance import finance
    from .health import health
    from .login import login
    from .page_filters import page_filters

    app.register_blueprint(health)
    app.register_blueprint(api)
    app.register_blueprint(alipay)
    app.register_blueprint(pages)
    app.register_blueprint(page_filters)
    app.register_blueprint(login)
    app.register_blueprint(billing)
    app.register_blueprint(finance)
