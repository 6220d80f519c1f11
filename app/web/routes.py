"""Every blueprint of the service, registered in one place."""
from __future__ import annotations

from flask import Flask


def register_routes(app: Flask) -> None:
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
