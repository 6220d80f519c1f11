"""Scheduled jobs, and the claims that make each run happen once across processes and hosts."""
from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from .adapters.db.models import JobLock, JobRun
from .services import ledger
from .wiring import Wallet

log = logging.getLogger(__name__)


class Summary(str):
    """A job run's one-line summary, and how many of its items failed (logged one by one).

    A run with failures still did the rest of its work: its summary is kept, its recorded
    outcome is "errors" instead of "ok", and ``jobs run`` exits non-zero.
    """

    errors: int

    def __new__(cls, text: str, errors: int = 0):
        summary = super().__new__(cls, text)
        summary.errors = errors
        return summary


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: int
    run: Callable[[Wallet], str]  # returns a one-line summary (a Summary when items can fail)
    description: str


def _ledger_verify(wallet: Wallet) -> str:
    with wallet.db.snapshot() as session:
        differences = ledger.verify(session)
        broken = ledger.verify_references(session)
        inconsistent = ledger.verify_consistency(session)
    for diff in differences:
        log.error(
            "ledger difference: cached balance does not equal its entries",
            extra={
                "account_id": diff.account_id,
                "bucket": diff.bucket,
                "unit_id": diff.unit_id,
                "cached_fen": diff.cached_fen,
                "ledger_fen": diff.ledger_fen,
            },
        )
    for reference in broken:
        log.error(
            "ledger reference broken: a row refers to one that does not exist",
            extra={"table": reference.table, "row_id": reference.row_id, "problem": reference.problem},
        )
    for found in inconsistent:
        log.error(
            "ledger inconsistent: a row contradicts its history, order or statement line",
            extra={"table": found.table, "row_id": found.row_id, "problem": found.problem},
        )
    if differences or broken or inconsistent:
        raise RuntimeError(f"{len(differences) + len(broken) + len(inconsistent)} ledger difference(s)")
    return "ledger clean"


def _alipay_poll(wallet: Wallet) -> str:
    from .services.topups import poll_pending_topups

    counts = poll_pending_topups(wallet.db, wallet.clock, wallet.gateway)
    return Summary(", ".join(f"{name} {count}" for name, count in counts.items()), errors=counts["errors"])


def _credits_expire(wallet: Wallet) -> str:
    from .services.expiry import expire_credits

    return expire_credits(wallet.db, wallet.clock).line()


def _statements_import(wallet: Wallet) -> str:
    from .services.reconcile import reconcile
    from .services.statement_inbox import import_inbox

    files = import_inbox(wallet.db, wallet.clock, wallet.settings.statement_inbox)
    lines = reconcile(wallet.db, wallet.clock)
    return Summary(
        ", ".join(
            [f"files {name} {count}" for name, count in files.items()]
            + [f"lines {name} {count}" for name, count in lines.items()]
        ),
        # A refused file is an answer (it waits in failed/ with its reason); an error is a file
        # that could not be imported at all and stays for the next run.
        errors=files["errors"],
    )


def _page_sessions_purge(wallet: Wallet) -> str:
    from .services.sessions import purge_page_sessions

    return f"forgot {purge_page_sessions(wallet.db, wallet.clock)} page session(s)"


def _records_purge(wallet: Wallet) -> str:
    from .services.coupons import purge_activation_failures
    from .services.unverified_notifies import purge_unverified_notifies

    settings = wallet.settings
    notifies = purge_unverified_notifies(
        wallet.db, wallet.clock, retention_days=settings.notify_unverified_retention_days
    )
    retention = timedelta(days=settings.operations_retention_days)
    runs = purge_job_runs(wallet, retention=retention)
    guesses = purge_activation_failures(wallet.db, wallet.clock, retention=retention)
    return f"forgot {notifies} unverified notify(s), {runs} job run(s), {guesses} failed activation(s)"


def purge_job_runs(wallet: Wallet, *, retention: timedelta) -> int:
    """Forget the job runs started more than ``retention`` ago; return how many."""
    with wallet.db.transaction() as session:
        cutoff = wallet.clock.shared_now(session) - retention
        return session.execute(delete(JobRun).where(JobRun.started_at < cutoff)).rowcount


JOBS: dict[str, Job] = {}


def register_job(job: Job) -> None:
    """Add a job to the schedule."""
    JOBS[job.name] = job


register_job(Job("ledger-verify", 3600, _ledger_verify, "compare cached balances with the ledger"))
register_job(
    Job("credits-expire", 300, _credits_expire, "forfeit coupons and prepaid cards past their validity")
)
register_job(Job("alipay-poll", 60, _alipay_poll, "query stale pending top-ups, close expired ones"))
register_job(
    Job("statements-import", 300, _statements_import, "import the statement inbox, then reconcile")
)
register_job(
    Job("page-sessions-purge", 3600, _page_sessions_purge, "forget page sessions that ended or outlived 12 hours")
)
register_job(
    Job(
        "records-purge",
        3600,
        _records_purge,
        "forget unverified notifies, job runs and failed activations past their retention",
    )
)


# A run holds its job's lease this long and renews it every LEASE_RENEW_SECONDS while it runs,
# however long that takes (a slow statements import, or alipay-poll during an Alipay outage): no
# second run starts beside it. The lease of a process killed mid-run lapses after LEASE_TTL,
# and the job runs again at its next tick.
LEASE_TTL = timedelta(minutes=2)
LEASE_RENEW_SECONDS = 30.0


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(wallet: Wallet, name: str, holder: str, ttl: timedelta) -> bool:
    """Take the lease on ``name`` unless another live holder has it (by the shared clock)."""
    try:
        with wallet.db.transaction() as session:
            now = wallet.clock.shared_now(session)
            session.add(JobLock(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        pass
    with wallet.db.transaction() as session:
        now = wallet.clock.shared_now(session)
        taken = session.execute(
            update(JobLock)
            .where(JobLock.name == name, JobLock.expires_at < now)
            .values(holder=holder, expires_at=now + ttl)
        ).rowcount
    return bool(taken)


def renew_lease(wallet: Wallet, name: str, holder: str, ttl: timedelta) -> bool:
    """Extend ``holder``'s lease on ``name``; False when it no longer holds it."""
    with wallet.db.transaction() as session:
        renewed = session.execute(
            update(JobLock)
            .where(JobLock.name == name, JobLock.holder == holder)
            .values(expires_at=wallet.clock.shared_now(session) + ttl)
        ).rowcount
    return bool(renewed)


class _LeaseRenewal:
    """A thread renewing the lease while the run lasts."""

    def __init__(self, wallet: Wallet, name: str, holder: str):
        self._args = (wallet, name, holder)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease:{name}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        wallet, name, holder = self._args
        while not self._stopped.wait(LEASE_RENEW_SECONDS):
            try:
                if not renew_lease(wallet, name, holder, LEASE_TTL):
                    log.warning("job lease lost: another process may run the job", extra={"job": name})
            except Exception:  # noqa: BLE001 - retried at the next renewal
                log.warning("job lease not renewed", extra={"job": name}, exc_info=True)


def release_lease(wallet: Wallet, name: str, holder: str) -> None:
    with wallet.db.transaction() as session:
        session.execute(delete(JobLock).where(JobLock.name == name, JobLock.holder == holder))


def claim_slot(wallet: Wallet, name: str, slot: str, holder: str) -> int | None:
    """Claim the run of ``name`` for ``slot``; None when another process claimed it."""
    try:
        with wallet.db.transaction() as session:
            run = JobRun(job_name=name, slot=slot, holder=holder, started_at=wallet.clock.shared_now(session))
            session.add(run)
            session.flush()
            return run.id
    except IntegrityError:
        return None


def run_job(wallet: Wallet, name: str, *, slot: str | None = None, holder: str | None = None) -> str | None:
    """Run job ``name`` once now; return its summary, or None when another holder ran it.

    ``slot`` (from the scheduler) makes the run unique per schedule tick across hosts; the
    lease keeps two runs of one job from overlapping, whoever started them.
    """
    job = JOBS[name]
    holder = holder or holder_name()
    slot = slot or f"manual:{wallet.clock.now().isoformat()}:{holder}"
    if not acquire_lease(wallet, name, holder, ttl=LEASE_TTL):
        log.info("job skipped: another process holds its lease", extra={"job": name})
        return None
    try:
        with _LeaseRenewal(wallet, name, holder):
            return _run_claimed(wallet, job, slot, holder)
    finally:
        release_lease(wallet, name, holder)


def _run_claimed(wallet: Wallet, job: Job, slot: str, holder: str) -> str | None:
    run_id = claim_slot(wallet, job.name, slot, holder)
    if run_id is None:
        log.info("job skipped: this slot already ran", extra={"job": job.name, "slot": slot})
        return None
    try:
        summary = job.run(wallet)
        outcome = "errors" if getattr(summary, "errors", 0) else "ok"
    except Exception as exc:
        summary, outcome = f"{type(exc).__name__}: {exc}", "failed"
        log.exception("job failed", extra={"job": job.name})
        raise
    finally:
        with wallet.db.transaction() as session:
            session.execute(
                update(JobRun)
                .where(JobRun.id == run_id)
                .values(finished_at=wallet.clock.shared_now(session), outcome=outcome, detail=summary[:2000])
            )
    level = logging.WARNING if outcome == "errors" else logging.INFO
    log.log(level, "job finished", extra={"job": job.name, "outcome": outcome, "summary": str(summary)})
    return summary


def scheduler_tick(wallet: Wallet, job: Job, holder: str) -> None:
    """Run ``job`` for the current slot; whatever fails is logged and the scheduler keeps going.

    The slot counts intervals by the shared clock, so every host names a tick alike.
    """
    try:
        with wallet.db.sessions() as session:
            now = wallet.clock.shared_now(session)
        slot = str(int(now.timestamp()) // job.interval_seconds)
        run_job(wallet, job.name, slot=slot, holder=holder)
    except Exception as exc:  # noqa: BLE001 - the next tick tries again
        # A failure of the job itself was logged with its traceback; this also names one the job
        # never reached (the database unreachable while taking the lease or the slot).
        log.error(
            "scheduled job run failed", extra={"job": job.name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        )


def run_scheduler(wallet: Wallet) -> None:
    """Run every job on its interval in this process, in the foreground, until stopped."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    holder = holder_name()
    scheduler = BlockingScheduler(timezone="UTC")

    for job in JOBS.values():
        scheduler.add_job(
            scheduler_tick,
            IntervalTrigger(seconds=job.interval_seconds),
            args=[wallet, job, holder],
            id=job.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=job.interval_seconds,
        )
    stopping: list[threading.Thread] = []

    def stop(signum, _frame) -> None:
        # SIGTERM (a service manager stopping it) or SIGINT: a job that is running finishes and
        # releases its lease, instead of dying mid-run and leaving the lease to lapse. The
        # shutdown waits for it in a thread of its own, never inside this signal handler.
        if stopping:
            return
        if not scheduler.running:  # the signal came before the scheduler started: nothing runs
            raise SystemExit(0)
        log.info("scheduler stopping: running jobs finish first", extra={"signal": signal.Signals(signum).name})
        scheduler.pause()  # no job starts from now on
        stopping.append(threading.Thread(target=scheduler.shutdown, kwargs={"wait": True}, name="scheduler-stop"))
        stopping[0].start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log.info("scheduler started", extra={"holder": holder, "jobs": ",".join(JOBS)})
    scheduler.start()
    for thread in stopping:
        thread.join()
    log.info("scheduler stopped", extra={"holder": holder})
