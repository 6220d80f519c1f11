"""Every blueprint of the service, registered in one place."""
from __future__ import annotations

from flask import Flask


def register_routes(app: Flask) -> None:
    from .api import api
    from .api import accounts, topups  # noqa: F401 - registers the views on ``api``
    from .api import bills, coupons, prepaid_cards  # noqa: F401 - registers the views on ``api``
    from .alipay import alipay
    from .checkout import pages
    from .health import health

    app.register_blueprint(health)
    app.register_blueprint(api)
    app.register_blueprint(alipay)
    app.register_blueprint(pages)
