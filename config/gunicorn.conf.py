# Gunicorn settings for the wallet service: `gunicorn -c config/gunicorn.conf.py wsgi:app`.
# Command-line options override these (e.g. `--bind 0.0.0.0:8000`).
#
# Threaded workers: one process per core (each runs Python on one core at a time), and enough
# threads to keep that core busy while requests wait on PostgreSQL. Measured on 2 cores with the
# Alipay notify (docs/benchmarks.md, "Notify"): 2 workers x 8 threads gave the most credited
# notifies per second for the least CPU; 2 x 4 left CPU idle; 3 or 4 processes, or sync workers
# (no keep-alive), cost more CPU per request. Each worker pools 10 PostgreSQL connections
# (app/adapters/db; up to 20 more open briefly in bursts): keep threads at 10 or fewer, or the
# extra threads open and close connections all the time, and keep workers x 30 below the
# server's max_connections.
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
