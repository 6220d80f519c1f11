"""WSGI entrypoint: ``gunicorn wsgi:app``; ``flask --app wsgi ...`` for operator commands."""
from app import create_app

app = create_app()
