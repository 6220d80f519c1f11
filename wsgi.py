"""WSGI entrypoint: ``gunicorn wsgi:app``; ``flask --app wsgi ...`` for operator commands."""
import sys

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # One line naming what is wrong (never a value), not a traceback.
    sys.exit(f"error: {exc}")
