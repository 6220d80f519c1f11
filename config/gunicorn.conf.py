# Gunicorn settings for the wallet service: `gunicorn -c config/gunicorn.conf.py wsgi:app`.
# Command-line options override these (e.g. `--bind 0.0.0.0:8000`).
#
# Threaded workers: one process per core (each runs Python on one core at a time), and enough
# threads to keep that core busy while requests wait on PostgreSQL. Measured on 2 cores with the
# Alipay notify (docs/benchmarks.md, "Notify"), which waits on one round trip per request: 2
# workers x 4 or 5 threads gave the most credited notifies per second for the least CPU; 3
# threads left CPU idle; 6 or 8 threads, or 3 or 4 processes, cost more CPU per request in
# thread and process switching. Each worker pools 10 PostgreSQL connections (app/adapters/db;
# up to 20 more open briefly in bursts), and each of its threads that credits a notify keeps one
# more of its own: keep threads at 10 or fewer, or the extra threads open and close pooled
# connections all the time, and keep workers x (30 + threads) below the server's max_connections.
#
# reuse_port: each worker listens on its own socket (SO_REUSEPORT) and the kernel spreads new
# connections over them. With one shared socket, whichever worker wakes first accepts most of a
# burst of keep-alive clients (54 of 64 measured), and their requests queue behind each other
# while the other worker idles.
import gc
import logging
import os
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = 5
timeout = 30
graceful_timeout = 30
accesslog = None
errorlog = "-"
reuse_port = True
# gunicorn's control socket (for gunicornc) defaults to one path per user, $HOME/.gunicorn/
# gunicorn.ctl, which every gunicorn on the host would share: a second instance (another
# release beside this one, a benchmark) takes it over. The service does not use it.
control_socket_disable = True


def on_starting(server):
    # Check the configuration once, in the master, before any worker starts: a worker that cannot
    # build the app only exits and is replaced, over and over, each time with a traceback.
    # A schema that `db upgrade` has not reached yet is refused too: every request touching a
    # new table or column would fail.
    from app import create_app
    from app.adapters.db.migrate import schema_refusal
    from app.config import ConfigError

    try:
        db = create_app().extensions["wallet"].db
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    try:
        problem = schema_refusal(db)
    finally:
        db.dispose()
    if problem is not None:
        sys.exit(f"error: {problem}")


class WithholdMalformedRequestText(logging.Filter):
    """gunicorn logs a request it cannot parse with the offending text as it came ("Invalid
    request from ip=...: Invalid HTTP Header: '...'"), and a header line that lost its colon may
    be "Authorization Bearer <token>": keep the address and the kind of error, not the text."""

    PREFIX = "Invalid request from ip="

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.PREFIX):
            where, _, error = message.partition(": ")
            kind = error.partition(":")[0].partition("'")[0].strip()
            record.msg, record.args = f"{where}: {kind} (the request's text is not logged)", ()
        return True


def post_worker_init(worker):
    logging.getLogger("gunicorn.error").addFilter(WithholdMalformedRequestText())
    # The app, its modules and their objects (about 100,000) are loaded now and live as long as
    # the worker: freeze them out of the cyclic collector's reach. A full collection then scans
    # only what requests left behind (under 0.1 ms) instead of holding the GIL, and so every
    # thread of the worker, for about 30 ms (measured) whenever one happens.
    gc.freeze()
