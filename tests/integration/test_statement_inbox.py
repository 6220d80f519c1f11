"""The statements-import job: the inbox folder, on SQLite and PostgreSQL."""
import os
import time

import pytest
from sqlalchemy import select

from app.adapters.db.models import Statement
from app.jobs import run_job
from tests.integration.statement_helpers import (  # noqa: F401 - payer: a fixture
    assert_ledger_clean,
    balances,
    csv_file,
    payer,
    row,
    stored_counts,
)


@pytest.fixture
def inbox(wallet):
    folder = wallet.settings.statement_inbox
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def drop(inbox, name, data, *, age_seconds=60):
    path = inbox / name
    path.write_bytes(data)
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_inbox_job_imports_reconciles_and_files_each_statement_away(inbox, wallet, payer):
    drop(inbox, "nov.csv", csv_file(row(payer["remittance_code"], "100.00")))
    drop(inbox, "broken.csv", csv_file(row("ok"), row("sub-fen", "1.005")))
    summary = run_job(wallet, "statements-import")
    assert "files imported 1" in summary and "files failed 1" in summary
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == []
    assert (inbox / "processed" / "nov.csv").exists()
    assert (inbox / "failed" / "broken.csv").exists()
    reason = (inbox / "failed" / "broken.csv.reason.txt").read_text(encoding="utf-8")
    assert reason.startswith("line 3:") and "1.005" in reason
    assert balances(wallet, payer["id"])[0] == 100_00
    assert stored_counts(wallet) == (1, 1)
    assert_ledger_clean(wallet)


def test_same_file_dropped_again_is_filed_but_adds_nothing(inbox, wallet, payer):
    data = csv_file(row(payer["remittance_code"], "100.00"))
    drop(inbox, "nov.csv", data)
    run_job(wallet, "statements-import")
    drop(inbox, "nov.csv", data)
    wallet.clock.advance(minutes=5)  # a later run: the frozen clock would name the same slot
    summary = run_job(wallet, "statements-import")
    assert "files duplicate 1" in summary
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["nov.1.csv", "nov.csv"]
    assert balances(wallet, payer["id"])[0] == 100_00
    assert stored_counts(wallet) == (1, 1)


def test_inbox_leaves_a_file_that_may_still_be_being_written(inbox, wallet, payer):
    drop(inbox, "fresh.csv", csv_file(row(payer["remittance_code"])), age_seconds=0)
    drop(inbox, "upload.csv.part", csv_file(row(payer["remittance_code"])))
    run_job(wallet, "statements-import")
    assert (inbox / "fresh.csv").exists() and (inbox / "upload.csv.part").exists()
    assert stored_counts(wallet) == (0, 0)


def test_inbox_job_runs_from_the_cli(app, inbox, wallet, payer):
    drop(inbox, "nov.csv", csv_file(row(payer["remittance_code"], "5.00")))
    result = app.test_cli_runner().invoke(args=["jobs", "run", "statements-import"])
    assert result.exit_code == 0, result.output
    assert "files imported 1" in result.output and "lines matched" in result.output
    assert balances(wallet, payer["id"])[0] == 5_00


def test_a_file_that_could_not_be_imported_makes_the_cli_run_exit_5_and_stays_for_the_next_run(
        app, inbox, wallet, payer, monkeypatch):
    from app.services import statement_inbox

    drop(inbox, "a.csv", csv_file(row(payer["remittance_code"], "5.00", tid="A1")))
    drop(inbox, "b.csv", csv_file(row(payer["remittance_code"], "7.00", tid="B1")))
    real_import = statement_inbox.import_statement

    def import_all_but_b(db, clock, *, data, filename, actor):
        if filename == "b.csv":
            raise OSError("the disk went away")
        return real_import(db, clock, data=data, filename=filename, actor=actor)

    monkeypatch.setattr(statement_inbox, "import_statement", import_all_but_b)
    result = app.test_cli_runner().invoke(args=["jobs", "run", "statements-import"])
    assert result.exit_code == 5, result.output
    assert "files imported 1" in result.output and "files errors 1" in result.output
    assert (inbox / "b.csv").exists() and not (inbox / "a.csv").exists()
    assert balances(wallet, payer["id"])[0] == 5_00
    monkeypatch.setattr(statement_inbox, "import_statement", real_import)
    wallet.clock.advance(seconds=1)  # a manual run's slot is named by the time it starts
    again = app.test_cli_runner().invoke(args=["jobs", "run", "statements-import"])
    assert again.exit_code == 0, again.output
    assert balances(wallet, payer["id"])[0] == 12_00


def test_missing_inbox_is_not_an_error(wallet):
    assert "files imported 0" in run_job(wallet, "statements-import")


def test_a_file_name_that_is_not_utf8_is_imported_under_a_readable_name(inbox, wallet, payer):
    # "对账单.csv" as a Windows share in GBK writes it: the name is bytes no UTF-8 decoder reads.
    raw_name = "对账单.csv".encode("gbk")
    path = os.path.join(os.fsencode(inbox), raw_name)
    with open(path, "wb") as file:
        file.write(csv_file(row(payer["remittance_code"], "8.00")))
    then = time.time() - 60
    os.utime(path, (then, then))
    summary = run_job(wallet, "statements-import")
    assert "files imported 1" in summary, summary
    assert balances(wallet, payer["id"])[0] == 8_00
    assert os.listdir(os.fsencode(inbox / "processed")) == [raw_name]
    with wallet.db.transaction() as session:
        stored = session.scalars(select(Statement.filename)).all()
    # Each byte the name's encoding cannot be read in becomes U+FFFD.
    assert stored == [raw_name.decode("utf-8", "replace")] and stored[0].endswith(".csv")


def test_a_symbolic_link_in_the_inbox_is_refused_and_its_target_never_read(inbox, wallet, payer, tmp_path):
    # Whoever can write to the inbox share must not make the service read files elsewhere
    # (its secret key, another statement) by dropping a link to them.
    outside = tmp_path / "elsewhere.csv"
    outside.write_bytes(csv_file(row(payer["remittance_code"], "100.00")))
    link = inbox / "link.csv"
    link.symlink_to(outside)
    then = time.time() - 60
    os.utime(link, (then, then), follow_symlinks=False)
    os.utime(outside, (then, then))
    summary = run_job(wallet, "statements-import")
    assert "files imported 0" in summary and "files failed 1" in summary, summary
    assert stored_counts(wallet) == (0, 0)
    assert balances(wallet, payer["id"])[0] == 0
    moved = inbox / "failed" / "link.csv"
    assert moved.is_symlink() and outside.read_bytes().startswith(b"transaction_id")
    assert "link" in (inbox / "failed" / "link.csv.reason.txt").read_text(encoding="utf-8")


def test_a_refusal_reason_is_never_written_through_a_planted_link(inbox, wallet, tmp_path):
    target = tmp_path / "planted-target.txt"
    (inbox / "failed").mkdir()
    (inbox / "failed" / "broken.csv.reason.txt").symlink_to(target)  # dangling until written
    drop(inbox, "broken.csv", csv_file(row("x", "1.005")))
    summary = run_job(wallet, "statements-import")
    assert "files failed 1" in summary, summary
    assert not target.exists()
    reasons = [p for p in (inbox / "failed").iterdir() if p.name.endswith(".reason.txt") and not p.is_symlink()]
    assert len(reasons) == 1 and "1.005" in reasons[0].read_text(encoding="utf-8")


def while_importing(monkeypatch, action):
    """Run ``action`` once, between the job's reading of a file and its filing away."""
    from app.services import statement_inbox

    real, done = statement_inbox.import_statement, []

    def importing(*args, **kwargs):
        if not done:
            done.append(action())
        return real(*args, **kwargs)

    monkeypatch.setattr(statement_inbox, "import_statement", importing)


def test_a_file_still_being_written_is_left_in_the_inbox_and_imported_whole_when_complete(
    inbox, wallet, payer, monkeypatch
):
    # A slow copy that stalled longer than the settling time, then went on while the job read.
    first, rest = row(payer["remittance_code"], "100.00", tid="T1"), row(payer["remittance_code"], "50.00", tid="T2")
    path = drop(inbox, "slow.csv", csv_file(first))
    while_importing(monkeypatch, lambda: path.open("ab").write((rest + "\n").encode()))
    run_job(wallet, "statements-import")
    assert path.exists() and not (inbox / "processed" / "slow.csv").exists()
    monkeypatch.undo()
    os.utime(path, (time.time() - 60, time.time() - 60))
    wallet.clock.advance(minutes=5)
    summary = run_job(wallet, "statements-import")
    assert "files imported 1" in summary, summary
    assert (inbox / "processed" / "slow.csv").read_bytes() == csv_file(first, rest)
    assert balances(wallet, payer["id"])[0] == 150_00
    assert_ledger_clean(wallet)


def test_a_half_written_file_refused_while_still_being_written_is_retried_when_complete(
    inbox, wallet, payer, monkeypatch
):
    whole = csv_file(row(payer["remittance_code"], "100.00", tid="T1"))
    path = drop(inbox, "slow.csv", whole[:-20])  # cut inside the line: refused as it stands
    while_importing(monkeypatch, lambda: path.open("ab").write(whole[-20:]))
    run_job(wallet, "statements-import")
    assert path.exists() and not (inbox / "failed" / "slow.csv").exists()
    assert not (inbox / "failed" / "slow.csv.reason.txt").exists()
    monkeypatch.undo()
    os.utime(path, (time.time() - 60, time.time() - 60))
    wallet.clock.advance(minutes=5)
    assert "files imported 1" in run_job(wallet, "statements-import")
    assert balances(wallet, payer["id"])[0] == 100_00


def test_a_file_replaced_under_the_same_name_while_imported_is_not_filed_unread(inbox, wallet, payer, monkeypatch):
    old = csv_file(row(payer["remittance_code"], "100.00", tid="T1"))
    new = csv_file(row(payer["remittance_code"], "100.00", tid="T1"), row(payer["remittance_code"], "7.00", tid="T2"))
    path = drop(inbox, "nov.csv", old)

    def replace():
        replacement = drop(inbox, "nov.csv.tmp", new)
        os.replace(replacement, path)  # how an export tool saves over a file

    while_importing(monkeypatch, replace)
    run_job(wallet, "statements-import")
    assert path.read_bytes() == new  # the replacement waits for the next run
    monkeypatch.undo()
    wallet.clock.advance(minutes=5)
    assert "files imported 1" in run_job(wallet, "statements-import")
    assert balances(wallet, payer["id"])[0] == 107_00
    assert (inbox / "processed" / "nov.csv").read_bytes() == new


@pytest.mark.parametrize("name", ["nov.csv.filepart", "~$nov.xlsx", ".~lock.nov.csv#", "nov.csv.part", "nov.tmp"])
def test_upload_temporaries_and_office_lock_files_are_left_alone(inbox, wallet, payer, name):
    drop(inbox, name, csv_file(row(payer["remittance_code"])))
    summary = run_job(wallet, "statements-import")
    assert "files imported 0" in summary and "files failed 0" in summary, summary
    assert (inbox / name).exists()


def test_a_folder_in_the_inbox_is_left_alone(inbox, wallet, payer):
    (inbox / "archive").mkdir()
    drop(inbox / "archive", "old.csv", csv_file(row(payer["remittance_code"])))
    summary = run_job(wallet, "statements-import")
    assert "files imported 0" in summary and "files failed 0" in summary, summary
    assert (inbox / "archive" / "old.csv").exists()
