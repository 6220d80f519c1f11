#!/usr/bin/env python
"""Benchmark the Alipay notify path under gunicorn, on a fresh PostgreSQL database.

What it does, in order:

1. creates a fresh database on the server at ``BENCH_POSTGRES_URL`` (default
   ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), migrates it, inserts accounts and
   pending top-up orders in bulk;
2. generates an "Alipay" key pair and a correctly signed ``TRADE_SUCCESS`` notify for every order
   (one form body per line of a file);
3. starts gunicorn with ``config/gunicorn.conf.py`` (worker options can be overridden) on
   ``scripts/bench_app.py``: the real app from ``create_app()`` plus a bare ``/bench/echo`` form
   POST route that exists only there; waits for ``/readyz``;
4. drives the notifies with ``wrk`` (a Lua script hands each request the next pre-generated body
   of its own slice, so every notify is for a distinct order and must credit): a warm-up, the
   measured run, then the bare echo endpoint for comparison;
5. prints credited notifies/s, p50/p99 latency, the bare endpoint's throughput and the ratio,
   each worker's RSS, and verifies that exactly the orders whose notifies were sent were credited,
   once, and that the ledger verifies clean; then stops gunicorn and drops the database.

It is a benchmark, not a test: it prints figures and exits non-zero only when a correctness check
fails (targets missed are reported, not failed). Requires ``wrk``
(Debian: ``apt-get update && apt-get install -y wrk``).

    .venv/bin/python scripts/bench_notify.py
    .venv/bin/python scripts/bench_notify.py --worker-class sync --workers 8 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, astuple, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from app.adapters.alipay.beijing import format_beijing  # noqa: E402
from app.adapters.alipay.keys import generate_keypair, load_app_private_key  # noqa: E402
from app.adapters.alipay.sandbox.notify_builder import (  # noqa: E402
    build_signed_notify,
    encode_form,
    payment_notify_fields,
)
from app.adapters.db.migrate import upgrade  # noqa: E402
from app.adapters.db.models import (  # noqa: E402
    Account,
    AlipayNotification,
    LedgerTransaction,
    TopupOrder,
)
from app.adapters.db.scratch import create_database, drop_database  # noqa: E402
from app.domain.ids import new_out_trade_no, random_id  # noqa: E402
from app.domain.money import format_fen  # noqa: E402
from app.domain.remittance import generate_code  # noqa: E402

DEFAULT_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
GUNICORN_CONF = ROOT / "config" / "gunicorn.conf.py"
APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
TARGETS = {"credited_per_s": 1000, "ratio": 0.35, "p99_ms": 50.0, "rss_mb": 150.0}

WRK_MISSING = """\
wrk is not installed; this benchmark drives its load with wrk.
Install it (Debian/Ubuntu): apt-get update && apt-get install -y wrk
(or put a wrk binary on PATH, or pass --wrk /path/to/wrk)."""

# One Lua state per wrk thread. Each thread takes its own contiguous slice of the body file
# (lines first .. first+count-1 split evenly between threads), sends each body once, and counts
# what it issued, so the script can check afterwards that exactly those orders were credited.
LUA = r"""
local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

function init(args)
  local file, first, count, nthreads = args[1], tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  local path = args[5]
  -- "cycle" (the bare endpoint, which credits nothing) reuses bodies; "once" never does.
  cycle = (args[6] == "cycle")
  local per = math.floor(count / nthreads)
  slice_first = first + tid * per
  local last = slice_first + per - 1
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"}
  reqs = {}
  local i = 0
  for line in io.lines(file) do
    if i >= slice_first then
      reqs[#reqs + 1] = wrk.format("POST", path, headers, line)
    end
    i = i + 1
    if i > last then break end
  end
  issued, ok, bad, exhausted = 0, 0, 0, 0
  -- wrk calls request() once on thread 0, before it starts, only to check the request parses:
  -- that call must not use up an order.
  verify_call = (tid == 0)
end

function request()
  if verify_call then
    verify_call = false
    return reqs[1] or wrk.format("GET", "/healthz")
  end
  if cycle and issued >= #reqs then
    issued = issued + 1
    return reqs[(issued - 1) % #reqs + 1]
  end
  if issued >= #reqs then
    -- Out of distinct bodies: stop rather than send a duplicate.
    exhausted = 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  issued = issued + 1
  return reqs[issued]
end

function response(status, headers, body)
  if status == 200 and body == "success" then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    parts[#parts + 1] = string.format(
      '{"first":%d,"issued":%d,"ok":%d,"bad":%d,"exhausted":%d}',
      t:get("slice_first"), t:get("issued"), t:get("ok"), t:get("bad"), t:get("exhausted"))
  end
  -- The latency distribution as quantiles ("percent:us"), denser towards the tail, so that
  -- several runs' latencies can be merged (this wrk's Lua API has percentiles, not the raw
  -- histogram): every 0.5% to 90%, every 0.1% to 99%, every 0.01% to 100%.
  local quantiles = {}
  local function add(p) quantiles[#quantiles + 1] = string.format('"%.2f":%d', p, latency:percentile(p)) end
  for i = 1, 180 do add(i * 0.5) end
  for i = 1, 90 do add(90 + i * 0.1) end
  for i = 1, 100 do add(99 + i * 0.01) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,' ..
    '"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,"threads":[%s],"quantiles_us":{%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, table.concat(parts, ","), table.concat(quantiles, ",")))
end
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=80_000, help="pending orders (= signed notifies)")
    parser.add_argument("--accounts", type=int, default=1_000, help="accounts the orders spread over")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up notifies")
    parser.add_argument("--warmup-orders", type=int, default=10_000, help="orders reserved for the warm-up")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds of notifies and of bare POSTs measured, each (split over the rounds)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternate notify and bare runs this many times (1: one run of each)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1 keeps its CPU low)")
    parser.add_argument("--worker-class", help="override the config file's worker_class")
    parser.add_argument("--workers", type=int, help="override the config file's workers")
    parser.add_argument("--threads", type=int, help="override the config file's threads")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--wrk", default="wrk", help="the wrk binary")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each measured run, wait up to this long for other processes to go quiet")
    parser.add_argument("--keep", action="store_true", help="keep the database and temp files")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this JSON file")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- database


def seed(url: str, n_accounts: int, n_orders: int) -> list[tuple[str, int]]:
    """Insert accounts and pending orders in bulk; return [(out_trade_no, amount_fen)] in order."""
    now = datetime.now(timezone.utc)
    codes: set[str] = set()
    while len(codes) < n_accounts:
        codes.add(generate_code())
    accounts = [
        {
            "id": random_id("acc"),
            "name": f"Bench account {i}",
            "settlement": "guance",
            "remittance_code": code,
            "cash_fen": 0,
            "arrears_fen": 0,
            "invoiceable_fen": 0,
            "created_at": now,
        }
        for i, code in enumerate(sorted(codes))
    ]
    rng = random.Random(20261126)
    numbers: set[str] = set()
    orders = []
    for i in range(n_orders):
        number = new_out_trade_no(now)
        while number in numbers:
            number = new_out_trade_no(now)
        numbers.add(number)
        orders.append(
            {
                "out_trade_no": number,
                # Consecutive orders belong to different accounts, as unrelated payers would.
                "account_id": accounts[i % n_accounts]["id"],
                "amount_fen": rng.choice((1_00, 9_90, 50_00, 100_00, 888_88, 10_000_00)),
                "subject": "Wallet top-up",
                "status": "pending",
                "created_at": now,
                "expires_at": now + timedelta(minutes=15),
            }
        )
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(insert(Account), accounts)
        for start in range(0, n_orders, 5_000):
            connection.execute(insert(TopupOrder), orders[start : start + 5_000])
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    return [(o["out_trade_no"], o["amount_fen"]) for o in orders]


# ----------------------------------------------------------------------------- notifies

_SIGNING_KEY = None


def _init_signer(private_pem: str) -> None:
    global _SIGNING_KEY
    _SIGNING_KEY = load_app_private_key(private_pem)


def _sign_chunk(chunk: list[tuple[int, str, int]]) -> list[bytes]:
    now = datetime.now(timezone.utc)
    paid = format_beijing(now)
    created = format_beijing(now - timedelta(seconds=40))
    day = now.strftime("%Y%m%d")
    bodies = []
    for index, out_trade_no, amount_fen in chunk:
        fields = payment_notify_fields(
            app_id=APP_ID,
            seller_id=SELLER_ID,
            out_trade_no=out_trade_no,
            trade_no=f"{day}22001{index:015d}",
            total_amount=format_fen(amount_fen),
            subject="Wallet top-up",
            buyer_id=f"2088{index % 10**12:012d}",
            buyer_logon_id="pay***@example.com",
            gmt_create=created,
            gmt_payment=paid,
            notify_time=paid,
            notify_id=secrets.token_hex(16),
        )
        bodies.append(encode_form(build_signed_notify(_SIGNING_KEY, **fields)))
    return bodies


def write_notifies(path: Path, private_pem: str, orders: list[tuple[str, int]]) -> None:
    items = [(i, number, amount) for i, (number, amount) in enumerate(orders)]
    chunks = [items[start : start + 1_000] for start in range(0, len(items), 1_000)]
    with ProcessPoolExecutor(os.cpu_count() or 2, initializer=_init_signer, initargs=(private_pem,)) as pool:
        with path.open("wb") as out:
            for bodies in pool.map(_sign_chunk, chunks):
                for body in bodies:
                    assert b"\n" not in body
                    out.write(body + b"\n")


def write_keys(keys: Path) -> str:
    """Write a fresh "Alipay" public key and app private key into ``keys``; return Alipay's
    private key, which signs the notifies."""
    keys.mkdir(mode=0o700)
    alipay_private, alipay_public = generate_keypair()
    app_private, _app_public = generate_keypair()
    (keys / "alipay_public.pem").write_text(alipay_public)
    (keys / "app_private.pem").write_text(app_private)
    (keys / "app_private.pem").chmod(0o600)
    return alipay_private


def app_environment(url: str, work: Path) -> dict[str, str]:
    """The service's settings for a benchmark: every variable set, the keys ``write_keys`` wrote
    into ``work / "keys"``, an https gateway that this path never calls, one log line per notify
    as in production."""
    keys = work / "keys"
    return {
        "APP_ENV": "benchmark",
        "DATABASE_URL": url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "PUBLIC_BASE_URL": "https://wallet.bench.invalid",
        "INSTANCE_PATH": str(work / "instance"),
        "STATEMENT_INBOX": str(work / "inbox"),
        "ALIPAY_APP_ID": APP_ID,
        "ALIPAY_SELLER_ID": SELLER_ID,
        "ALIPAY_GATEWAY_URL": "https://openapi.alipay.invalid/gateway.do",
        "ALIPAY_PUBLIC_KEY": str(keys / "alipay_public.pem"),
        "ALIPAY_APP_PRIVATE_KEY": str(keys / "app_private.pem"),
        "LOG_LEVEL": "INFO",
    }


# ----------------------------------------------------------------------------- server


def gunicorn_settings(args: argparse.Namespace, env: dict) -> dict:
    """The effective worker settings: the config file's, with this run's overrides."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        conf = runpy.run_path(str(GUNICORN_CONF))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {
        "worker_class": args.worker_class or conf.get("worker_class", "sync"),
        "workers": args.workers or conf.get("workers", 1),
        "threads": args.threads or conf.get("threads", 1),
        "keepalive": conf.get("keepalive", 2),
    }


def start_gunicorn(env: dict, port: int, settings: dict, log_path: Path) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "-c", str(GUNICORN_CONF),
        "--bind", f"127.0.0.1:{port}",
        "--chdir", str(ROOT),
        "--pythonpath", str(ROOT / "scripts"),
        "--worker-class", settings["worker_class"],
        "--workers", str(settings["workers"]),
        "--threads", str(settings["threads"]),
        "bench_app:app",
    ]
    if not Path(command[0]).exists():
        command[0] = shutil.which("gunicorn") or "gunicorn"
    help_text = subprocess.run([command[0], "--help"], capture_output=True, text=True).stdout
    if "--no-control-socket" in help_text:
        # Recent gunicorn opens a control socket at a fixed path: two servers on one host would
        # fight over it, and the benchmark needs none.
        command.insert(-1, "--no-control-socket")
    log = log_path.open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, server: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"gunicorn not ready after {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


def worker_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return sorted(int(pid) for pid in children)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# ----------------------------------------------------------------------------- load


def run_wrk(wrk: str, lua: Path, base: str, path: str, *, bodies: Path, first: int, count: int,
            connections: int, threads: int, seconds: float, cycle: bool = False) -> dict:
    command = [
        wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
        "-s", str(lua), base + path, "--", str(bodies), str(first), str(count), str(threads), path,
        "cycle" if cycle else "once",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            figures = json.loads(line[len("BENCH_JSON "):])
            break
    else:
        raise SystemExit(f"wrk printed no figures:\n{result.stdout}\n{result.stderr}")
    figures["seconds"] = figures["duration_us"] / 1e6
    figures["rate"] = figures["requests"] / figures["seconds"]
    figures["issued"] = sum(t["issued"] for t in figures["threads"])
    figures["ok"] = sum(t["ok"] for t in figures["threads"])
    figures["bad"] = sum(t["bad"] for t in figures["threads"])
    figures["exhausted"] = any(t["exhausted"] for t in figures["threads"])
    figures["errors"] = sum(figures[k] for k in ("connect", "read", "write", "timeout"))
    return figures


def merged_latency(runs: list[dict]) -> dict:
    """p50/p90/p99 and max (ms) over several runs, from each run's latency quantiles.

    A run's quantile at p% stands for the run's requests between the previous quantile and p%;
    the merged percentile is read off all runs' quantiles sorted together, so weighted.
    """
    weighted = []
    for run in runs:
        previous = 0.0
        for percent, value in sorted((float(p), v) for p, v in run["quantiles_us"].items()):
            weighted.append((value, run["requests"] * (percent - previous) / 100))
            previous = percent
    weighted.sort()
    total = sum(weight for _, weight in weighted)
    figures = {"max": max(run["lat_max_us"] for run in runs) / 1000}
    for p in (50, 90, 99):
        rank, seen = p / 100 * total, 0.0
        figures[f"p{p}"] = weighted[-1][0] / 1000 if weighted else 0.0
        for value, weight in weighted:
            seen += weight
            if seen >= rank - 1e-9:
                figures[f"p{p}"] = value / 1000
                break
    return figures


TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (not idle, not waiting for I/O)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def backend_pids(engine) -> list[int]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                     "AND pid <> pg_backend_pid()")
            ).scalars()
        )


@dataclass
class CpuUse:
    """CPU seconds used during some wall seconds: the machine, the server, its backends, wrk."""

    wall: float = 0.0
    machine: float = 0.0
    server: float = 0.0
    postgres: float = 0.0
    wrk: float = 0.0

    def __add__(self, other: "CpuUse") -> "CpuUse":
        return CpuUse(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall else 0.0

    def describe(self) -> str:
        other = max(self.machine - self.server - self.postgres - self.wrk, 0.0)
        return (f"gunicorn {self.cores(self.server):.2f}, postgres backends {self.cores(self.postgres):.2f}, "
                f"wrk {self.cores(self.wrk):.2f}, other processes {self.cores(other):.2f} "
                f"(machine busy {self.cores(self.machine):.2f} of {os.cpu_count()})")


class CpuMeter:
    """Who used the CPU during a run: the server, its PostgreSQL backends, wrk, everyone else."""

    def __init__(self, server_pids: list[int], engine):
        self.server_pids = server_pids
        self.engine = engine
        self.use = CpuUse()

    def __enter__(self):
        self.pg_pids = backend_pids(self.engine)
        self.start = (time.monotonic(), machine_cpu(), process_cpu(self.server_pids),
                      process_cpu(self.pg_pids), _children_cpu())
        return self

    def __exit__(self, *exc):
        # Backends that connected during the run are counted from zero.
        pg_now = backend_pids(self.engine)
        new = [pid for pid in pg_now if pid not in self.pg_pids]
        end = (time.monotonic(), machine_cpu(), process_cpu(self.server_pids),
               process_cpu(self.pg_pids) + process_cpu(new), _children_cpu())
        self.use = CpuUse(*(end[i] - self.start[i] for i in range(5)))
        return False


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_for_idle_machine(limit: float, seconds: float) -> float:
    """Wait up to ``seconds`` until other processes use under ``limit`` cores; return their load."""
    deadline = time.monotonic() + seconds
    while True:
        before, t = machine_cpu(), time.monotonic()
        time.sleep(2.0)
        load = (machine_cpu() - before) / (time.monotonic() - t)
        if load < limit or time.monotonic() >= deadline:
            return load


def wait_quiet(engine, timeout: float = 15.0) -> None:
    """Wait until no notify is being handled any more (the last in-flight ones commit)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(AlipayNotification)).scalar_one()
            busy = connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                     "AND state NOT IN ('idle') AND pid <> pg_backend_pid()")
            ).scalar_one()
        if count == last and busy == 0:
            return
        last = count
        time.sleep(0.5)


# ----------------------------------------------------------------------------- checks


def verify(url: str, orders: list[tuple[str, int]], runs: list[dict]) -> dict:
    from sqlalchemy.orm import Session

    from app.services import ledger

    issued: set[str] = set()
    for figures in runs:
        for t in figures["threads"]:
            issued.update(number for number, _ in orders[t["first"] : t["first"] + t["issued"]])
    engine = create_engine(url)
    with Session(engine) as session:
        paid = set(session.execute(select(TopupOrder.out_trade_no).where(TopupOrder.status == "paid")).scalars())
        outcomes = dict(
            session.execute(
                select(AlipayNotification.outcome, func.count()).group_by(AlipayNotification.outcome)
            ).all()
        )
        credits = session.execute(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "topup_alipay")
        ).scalar_one()
        differences = ledger.verify(session) + ledger.verify_references(session)
    engine.dispose()
    return {
        "sent": len(issued),
        "credited_orders": len(paid),
        "same_orders": paid == issued,
        "notify_outcomes": outcomes,
        "ledger_credits": credits,
        "ledger_differences": len(differences),
        "ok": paid == issued and credits == len(issued) and outcomes == {"credited": len(issued)}
        and not differences,
    }


# ----------------------------------------------------------------------------- main


def core_speed() -> float:
    """CPU ms one core takes for a fixed pure-Python loop (best of 5): compares hosts and moments.

    On a shared host the same code runs at different speeds on different days; this figure,
    printed with every run, tells which runs of which days can be compared.
    """
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.process_time() - start)
    return best * 1000


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kb / 1024 / 1024, 1)}


def main() -> int:
    args = parse_args()
    # Stopped from outside: still stop gunicorn and drop the database (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wrk = shutil.which(args.wrk)
    if wrk is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    server_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER_URL)
    if args.warmup_orders >= args.orders:
        raise SystemExit("--orders must exceed --warmup-orders")

    work = Path(tempfile.mkdtemp(prefix="bench_notify_"))
    db_name = None
    server = None
    try:
        t0 = time.monotonic()
        db_name, url = create_database(server_url, "bench_notify")
        upgrade(url)
        orders = seed(url, args.accounts, args.orders)
        t_seed = time.monotonic() - t0

        alipay_private = write_keys(work / "keys")
        bodies = work / "notifies.txt"
        t1 = time.monotonic()
        write_notifies(bodies, alipay_private, orders)
        t_sign = time.monotonic() - t1
        print(f"prepared: database {db_name}, {args.accounts} accounts, {len(orders)} orders "
              f"({t_seed:.1f}s), {len(orders)} signed notifies ({t_sign:.1f}s)", flush=True)

        env = {**os.environ, **app_environment(url, work)}
        settings = gunicorn_settings(args, env)
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        server_log = work / "gunicorn.log"
        server = start_gunicorn(env, port, settings, server_log)
        wait_ready(base, server, server_log)
        workers = worker_pids(server.pid)
        print(f"gunicorn: {settings['worker_class']} workers={settings['workers']} "
              f"threads={settings['threads']} keepalive={settings['keepalive']} pids={workers}", flush=True)

        lua = work / "notify.lua"
        lua.write_text(LUA)
        engine = create_engine(url)
        common = dict(bodies=bodies, connections=args.connections, threads=args.wrk_threads)

        warm = run_wrk(wrk, lua, base, "/alipay/notify", first=0, count=args.warmup_orders,
                       seconds=args.warmup, **common)
        wait_quiet(engine)
        print(f"warm-up: {warm['ok']} credited in {warm['seconds']:.1f}s, non-success {warm['bad']}, "
              f"socket errors {warm['errors']}", flush=True)

        speed_before = core_speed()
        server_pids = [server.pid, *workers]
        # Notify and bare runs alternate in rounds, so that both see the same host: on a shared
        # host the speed of a core drifts within a minute, which a notify run followed by a bare
        # run would book as a difference between the two.
        seconds = args.duration / args.rounds
        notify_runs, bare_runs = [], []
        notify_cpu, echo_cpu = CpuUse(), CpuUse()
        rss_after_notify: dict[int, float | None] = {}
        first = args.warmup_orders
        for _ in range(args.rounds):
            if args.wait_idle:
                load = wait_for_idle_machine(0.25, args.wait_idle)
                print(f"other processes' load before the run: {load:.2f} cores", flush=True)
            with CpuMeter(server_pids, engine) as meter:
                run = run_wrk(wrk, lua, base, "/alipay/notify", first=first, count=args.orders - first,
                              seconds=seconds, **common)
            notify_runs.append(run)
            notify_cpu += meter.use
            # The next round starts after every body this one could have sent: none is sent twice.
            first = max(t["first"] + t["issued"] for t in run["threads"])
            wait_quiet(engine)
            rss_after_notify.update({pid: rss_mb(pid) for pid in worker_pids(server.pid)})

            if args.wait_idle:
                wait_for_idle_machine(0.25, args.wait_idle)
            with CpuMeter(server_pids, engine) as meter:
                bare_runs.append(run_wrk(wrk, lua, base, "/bench/echo", first=0, count=args.orders,
                                         seconds=seconds, cycle=True, **common))
            echo_cpu += meter.use
        rss_after_echo = {pid: rss_mb(pid) for pid in worker_pids(server.pid)}
        speed_after = core_speed()
        engine.dispose()

        checks = verify(url, orders, [warm, *notify_runs])
        stop(server)
        restarts = sorted(set(rss_after_echo) - set(workers))

        def total(runs: list[dict], key: str) -> float:
            return sum(run[key] for run in runs)

        credited_rate = total(notify_runs, "ok") / total(notify_runs, "seconds")
        bare_rate = total(bare_runs, "ok") / total(bare_runs, "seconds")
        ratio = credited_rate / bare_rate if bare_rate else 0.0
        round_ratios = [
            (n["ok"] / n["seconds"]) / (b["ok"] / b["seconds"]) for n, b in zip(notify_runs, bare_runs) if b["ok"]
        ]
        latency, bare_latency = merged_latency(notify_runs), merged_latency(bare_runs)
        p50, p99 = latency["p50"], latency["p99"]
        non_success = int(total(notify_runs, "bad"))
        socket_errors = int(total(notify_runs, "errors"))
        warm_exhausted = warm["exhausted"]
        exhausted = any(run["exhausted"] for run in notify_runs)
        rss = {pid: max(filter(None, (rss_after_notify.get(pid), rss_after_echo.get(pid))), default=0)
               for pid in set(rss_after_notify) | set(rss_after_echo)}
        max_rss = max(rss.values(), default=0.0)

        with create_engine(server_url).connect() as connection:
            pg_version = connection.execute(text("SHOW server_version")).scalar_one()
            sync_commit = connection.execute(text("SHOW synchronous_commit")).scalar_one()
        wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0]

        m = machine()
        print()
        print(f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB; PostgreSQL {pg_version} "
              f"(synchronous_commit={sync_commit}); {wrk_version.strip()}")
        print(f"core speed: a fixed Python loop of 1M additions took {speed_before:.0f} ms of CPU before the "
              f"runs, {speed_after:.0f} ms after (lower is faster)")
        print(f"gunicorn: {settings['worker_class']}, {settings['workers']} workers x {settings['threads']} threads; "
              f"wrk -t{args.wrk_threads} -c{args.connections}; {args.rounds} rounds of {seconds:g} s notify "
              f"+ {seconds:g} s bare")
        print(f"notify:  {int(total(notify_runs, 'ok'))} credited in {total(notify_runs, 'seconds'):.2f}s = "
              f"{credited_rate:,.0f} credited/s; latency p50 {p50:.1f} ms, p90 {latency['p90']:.1f} ms, "
              f"p99 {p99:.1f} ms, max {latency['max']:.1f} ms; non-success {non_success}, "
              f"socket errors {socket_errors}")
        print(f"         CPU cores used: {notify_cpu.describe()}")
        per = lambda seconds: seconds / total(notify_runs, "ok") * 1000 if credited_rate else 0.0  # noqa: E731
        print(f"         CPU per credited notify: {per(notify_cpu.server + notify_cpu.postgres + notify_cpu.wrk):.2f} ms "
              f"(gunicorn {per(notify_cpu.server):.2f}, postgres {per(notify_cpu.postgres):.2f}, wrk {per(notify_cpu.wrk):.2f})")
        if len(notify_runs) > 1:
            print("         p99 by round: " + ", ".join(f"{run['lat_p99_us'] / 1000:.1f}" for run in notify_runs)
                  + " ms; max by round: " + ", ".join(f"{run['lat_max_us'] / 1000:.1f}" for run in notify_runs) + " ms")
        print(f"bare:    {int(total(bare_runs, 'ok'))} form POSTs in {total(bare_runs, 'seconds'):.2f}s = "
              f"{bare_rate:,.0f}/s; latency p50 {bare_latency['p50']:.1f} ms, p99 {bare_latency['p99']:.1f} ms")
        print(f"         CPU cores used: {echo_cpu.describe()}")
        print(f"         CPU per bare POST: {echo_cpu.server / total(bare_runs, 'ok') * 1000:.2f} ms (gunicorn)")
        print(f"ratio:   credited/bare = {ratio:.3f}" + (
            f" (rounds: {', '.join(f'{r:.2f}' for r in round_ratios)})" if len(round_ratios) > 1 else ""))
        print("rss:     " + ", ".join(f"worker {pid} {mb:.1f} MB" for pid, mb in sorted(rss.items()))
              + (f" (workers restarted: {restarts})" if restarts else ""))
        print(f"check:   sent {checks['sent']} notifies (warm-up + run), credited orders {checks['credited_orders']}, "
              f"same set {checks['same_orders']}, ledger credits {checks['ledger_credits']}, "
              f"notify outcomes {checks['notify_outcomes']}, ledger differences {checks['ledger_differences']}"
              f" -> {'OK' if checks['ok'] else 'FAILED'}")
        if warm_exhausted:
            print(f"note:    the warm-up used all of its {args.warmup_orders} orders in "
                  f"{warm['seconds']:.1f} s; raise --warmup-orders")
        if exhausted:
            print("note:    a measured run ran out of distinct notifies before its end, so it was shorter; "
                  "raise --orders")
        print()
        results = [
            ("credited notifies/s", credited_rate >= TARGETS["credited_per_s"], f"{credited_rate:,.0f} (target >= 1,000)"),
            ("credited/bare ratio", ratio >= TARGETS["ratio"], f"{ratio:.3f} (target >= 0.35)"),
            ("p99 at 64 connections", p99 < TARGETS["p99_ms"], f"{p99:.1f} ms (target < 50 ms)"),
            ("worker RSS", max_rss < TARGETS["rss_mb"], f"max {max_rss:.1f} MB (target < 150 MB)"),
        ]
        for name, met, detail in results:
            print(f"target {'met   ' if met else 'MISSED'} {name}: {detail}")

        if args.json_out:
            Path(args.json_out).write_text(json.dumps({
                "machine": m, "core_speed_ms": [speed_before, speed_after], "postgres": pg_version, "synchronous_commit": sync_commit, "wrk": wrk_version,
                "gunicorn": settings, "connections": args.connections, "duration": args.duration,
                "rounds": args.rounds, "credited_per_s": credited_rate, "p50_ms": p50, "p90_ms": latency["p90"],
                "p99_ms": p99, "max_ms": latency["max"], "bare_per_s": bare_rate,
                "ratio": ratio, "round_ratios": round_ratios,
                "round_p99_ms": [run["lat_p99_us"] / 1000 for run in notify_runs], "rss_mb": rss, "checks": checks,
                "cpu_notify": asdict(notify_cpu), "cpu_bare": asdict(echo_cpu),
            }, indent=2, default=str))
        return 0 if checks["ok"] and non_success == 0 and socket_errors == 0 else 1
    finally:
        if server is not None:
            stop(server)
        if db_name is not None and not args.keep:
            drop_database(server_url, db_name)
        if args.keep:
            print(f"kept: database {db_name}, files in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
