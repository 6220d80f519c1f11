# Gunicorn settings for the wallet service: `gunicorn -c config/gunicorn.conf.py wsgi:app`.
# Command-line options override these (e.g. `--bind 0.0.0.0:8000`).
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
keepalive = 5
timeout = 30
graceful_timeout = 30
accesslog = None
errorlog = "-"
