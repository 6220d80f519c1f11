import threading

from app.jobs import JOBS, Job, acquire_lease, claim_slot, register_job, run_job


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
