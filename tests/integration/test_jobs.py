import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from app.adapters.db.migrate import upgrade
from app.adapters.db.models import JobLock, JobRun
from app.jobs import JOBS, Job, acquire_lease, claim_slot, register_job, run_job, scheduler_tick
from app.services.clock import Clock


def test_a_scheduler_slot_runs_once_across_processes(wallet):
    assert claim_slot(wallet, "ledger-verify", "123", "host-a:1") is not None
    assert claim_slot(wallet, "ledger-verify", "123", "host-b:2") is None


def test_a_lease_keeps_two_runs_of_one_job_apart(wallet):
    from datetime import timedelta

    assert acquire_lease(wallet, "x", "a", timedelta(minutes=5))
    assert not acquire_lease(wallet, "x", "b", timedelta(minutes=5))
    wallet.clock.advance(minutes=6)
    assert acquire_lease(wallet, "x", "b", timedelta(minutes=5))


def test_concurrent_runs_of_the_same_slot_run_the_job_once(wallet):
    calls = []
    register_job(Job("count-test", 60, lambda w: calls.append(1) or "counted", "test job"))
    try:
        barrier = threading.Barrier(4)

        def worker(i):
            barrier.wait()
            try:
                run_job(wallet, "count-test", slot="s1", holder=f"h{i}")
            except Exception:  # noqa: BLE001
                pass

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Others either lost the lease or found the slot taken; a later one may win the
        # lease but must find the slot claimed.
        run_job(wallet, "count-test", slot="s1", holder="late")
        assert calls == [1]
    finally:
        JOBS.pop("count-test")


def test_jobs_cli_lists_and_runs(app):
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["jobs", "list"])
    assert "ledger-verify" in listed.output
    ran = runner.invoke(args=["jobs", "run", "ledger-verify"])
    assert ran.exit_code == 0 and "ledger clean" in ran.output
    unknown = runner.invoke(args=["jobs", "run", "nope"])
    assert unknown.exit_code == 2


def lease_expiry(wallet, name):
    from app.adapters.db.models import JobLock

    with wallet.db.sessions() as session:
        lock = session.get(JobLock, name)
        return None if lock is None else lock.expires_at


def test_a_run_that_outlives_its_lease_renews_it_and_no_second_run_starts(wallet, monkeypatch):
    import time
    from datetime import timedelta

    from app import jobs

    monkeypatch.setattr(jobs, "LEASE_RENEW_SECONDS", 0.01, raising=False)
    second_run = []

    def slow(w):
        w.clock.advance(hours=1)  # far longer than any lease
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            expiry = lease_expiry(w, "slow-test")
            if expiry is not None and expiry > w.clock.now():
                break
            time.sleep(0.01)
        second_run.append(acquire_lease(w, "slow-test", "other-host:2", timedelta(minutes=5)))
        return "slow done"

    register_job(Job("slow-test", 60, slow, "test job"))
    try:
        assert run_job(wallet, "slow-test", slot="s1", holder="host-a:1") == "slow done"
    finally:
        JOBS.pop("slow-test")
    assert second_run == [False]
    assert lease_expiry(wallet, "slow-test") is None  # released when the run ended


def test_the_lease_of_a_process_killed_mid_run_lapses_and_the_job_runs_at_a_later_tick(wallet, monkeypatch):
    from app import jobs

    calls = []
    register_job(Job("killed-test", 60, lambda w: calls.append(1) or "ran", "test job"))
    try:
        # The process dies before it can release its lease (SIGKILL, a lost host).
        with monkeypatch.context() as dying:
            dying.setattr(jobs, "release_lease", lambda *args: None)
            run_job(wallet, "killed-test", slot="s1", holder="killed-host:1")
        assert run_job(wallet, "killed-test", slot="s2", holder="host-b:2") is None
        # alipay-poll runs every minute: a dead holder may not stop it for ten.
        wallet.clock.advance(minutes=3)
        assert run_job(wallet, "killed-test", slot="s3", holder="host-b:2") == "ran"
    finally:
        JOBS.pop("killed-test")
    assert calls == [1, 1]


def test_a_scheduler_tick_with_the_database_unreachable_is_logged_and_the_next_tick_runs(wallet, tmp_path, caplog):
    import dataclasses
    import logging

    from app import jobs
    from app.adapters.db import Database

    calls = []
    job = Job("tick-test", 60, lambda w: calls.append(1) or "ran", "test job")
    register_job(job)
    unreachable = Database(f"sqlite:///{tmp_path / 'no-such-folder' / 'wallet.sqlite3'}")
    try:
        with caplog.at_level(logging.ERROR, logger="app.jobs"):
            jobs.scheduler_tick(dataclasses.replace(wallet, db=unreachable), job, "host-a:1")
        assert [r.job for r in caplog.records if r.name == "app.jobs"] == ["tick-test"]
        assert "OperationalError" in caplog.records[-1].error
        jobs.scheduler_tick(wallet, job, "host-a:1")
    finally:
        JOBS.pop("tick-test")
        unreachable.dispose()
    assert calls == [1]


class _SkewedClock(Clock):
    """A host whose clock runs ``minutes`` away from the others'."""

    def __init__(self, minutes: float):
        self.skew = timedelta(minutes=minutes)

    def now(self) -> datetime:
        return super().now() + self.skew


def _host(wallet, minutes: float):
    return dataclasses.replace(wallet, clock=_SkewedClock(minutes))


@pytest.mark.postgres
def test_hosts_whose_clocks_disagree_keep_each_others_leases(pg_url, make_app):
    # A lease is reckoned by the database's clock: one taken on a host five minutes behind is
    # still live for a host on time, and one taken ahead does not outlive its holder.
    wallet = make_app(pg_url).extensions["wallet"]
    behind, on_time, ahead = _host(wallet, -5), _host(wallet, 0), _host(wallet, +5)
    assert acquire_lease(behind, "skew-test", "behind:1", timedelta(minutes=2))
    assert not acquire_lease(on_time, "skew-test", "on-time:2", timedelta(minutes=2))
    assert not acquire_lease(ahead, "skew-test", "ahead:3", timedelta(minutes=2))


@pytest.mark.postgres
def test_hosts_whose_clocks_disagree_run_a_tick_once(pg_url, make_app):
    # Every host names the hourly tick by the database's clock, not by its own (an hour and a
    # half behind, or a minute ahead, named another hour).
    wallet = make_app(pg_url).extensions["wallet"]
    calls = []
    job = Job("skew-tick-test", 3_600, lambda w: calls.append(1) or "ran", "test job")
    register_job(job)
    try:
        scheduler_tick(_host(wallet, -90), job, "behind:1")
        scheduler_tick(_host(wallet, 0), job, "on-time:2")
        scheduler_tick(_host(wallet, +1), job, "ahead:3")
    finally:
        JOBS.pop("skew-tick-test")
    assert calls == [1]


SCHEDULER_WITH_A_SLOW_JOB = """
import sys, time
from pathlib import Path

from app import create_app
from app.jobs import JOBS, Job, register_job, run_scheduler

marks = Path(sys.argv[1])


def slow(wallet):
    (marks / "started").touch()
    time.sleep(1.5)
    (marks / "finished").touch()
    return "slow done"


JOBS.clear()
register_job(Job("slow", 1, slow, "a job that takes a while"))
run_scheduler(create_app().extensions["wallet"])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_scheduler_lets_its_running_job_finish_and_release_its_lease(tmp_path, signum):
    url = f"sqlite:///{tmp_path / 'wallet.sqlite3'}"
    upgrade(url)
    env = {"PATH": os.environ.get("PATH", ""), "APP_ENV": "test", "DATABASE_URL": url, "LOG_LEVEL": "INFO",
           "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "test-secret-key-" + "x" * 32}
    process = subprocess.Popen([sys.executable, "-c", SCHEDULER_WITH_A_SLOW_JOB, str(tmp_path)], env=env,
                               cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            if (tmp_path / "started").exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert (tmp_path / "started").exists(), process.stderr.read() if process.poll() is not None else "no run"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert (tmp_path / "finished").exists()  # the run was not cut off
    assert "scheduler stopping" in stderr and "scheduler stopped" in stderr
    engine = create_engine(url)
    with engine.connect() as connection:
        leases = connection.execute(select(func.count()).select_from(JobLock.__table__)).scalar_one()
        runs = connection.execute(select(JobRun.__table__.c.outcome, JobRun.__table__.c.finished_at)).all()
    engine.dispose()
    assert leases == 0
    assert runs and all(outcome == "ok" and finished is not None for outcome, finished in runs)


def test_a_stop_signal_before_the_scheduler_has_started_exits_quietly(wallet, monkeypatch):
    from apscheduler.schedulers.blocking import BlockingScheduler

    from app.jobs import run_scheduler

    def signalled_first(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # handled before start() goes on
        raise AssertionError("the scheduler started after the stop signal")

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(BlockingScheduler, "start", signalled_first)
    try:
        with pytest.raises(SystemExit) as stopped:
            run_scheduler(wallet)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert stopped.value.code == 0
