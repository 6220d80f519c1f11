"""Operator commands as the contract and the README state them: output, exit codes, refusals."""
from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select

from app.adapters.db.models import ApiToken
from app.jobs import acquire_lease, release_lease
from app.services.tokens import hash_token
from tests.conftest import bearer

DOCUMENTED_JOBS = ("alipay-poll", "statements-import", "credits-expire", "ledger-verify")


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def tokens_stored(wallet) -> int:
    with wallet.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(ApiToken))


@pytest.mark.parametrize("role", ["admin", "finance"])
def test_token_create_prints_a_working_token_as_the_last_line_and_stores_only_its_hash(app, client, wallet, role):
    result = cli(app, "token", "create", "--role", role, "--label", "finance scripts")
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert client.get("/api/v1/statement-lines", headers=bearer(token)).status_code == 200
    with wallet.db.sessions() as session:
        [stored] = session.execute(select(ApiToken)).scalars().all()
    assert (stored.role, stored.label, stored.token_hash) == (role, "finance scripts", hash_token(token))
    assert token not in {stored.token_hash, stored.label}


def test_an_account_token_is_bound_to_its_account(app, client, new_account):
    mine, other = new_account("Mine"), new_account("Other")
    result = cli(app, "token", "create", "--role", "account", "--account", mine["id"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert client.get(f"/api/v1/accounts/{mine['id']}/wallet", headers=bearer(token)).status_code == 200
    assert client.get(f"/api/v1/accounts/{other['id']}/wallet", headers=bearer(token)).status_code == 403
    assert client.get("/api/v1/statement-lines", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize("args, words", [
    (["--role", "account"], "needs --account"),
    (["--role", "admin", "--account", "acc_x"], "needs --account"),
    (["--role", "account", "--account", "acc_missing"], "does not exist"),
    (["--role", "admin", "--label", "x" * 201], "label"),
    (["--role", "root"], "--role"),
])
def test_token_create_refuses_bad_options_with_a_message_and_stores_nothing(app, wallet, args, words):
    result = cli(app, "token", "create", *args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert words in result.output
    assert tokens_stored(wallet) == 0


@pytest.mark.parametrize("option", [["--label"], ["--account"]])
def test_token_create_refuses_text_that_is_not_utf8_with_a_message(app, wallet, option):
    # Bytes that are not UTF-8 on the command line reach Python as lone surrogates.
    result = cli(app, "token", "create", "--role", "account" if option == ["--account"] else "admin",
                 *option, "caf\udce9")
    assert result.exit_code == 2, (result.output, result.exception)
    assert "UTF-8" in result.output
    assert tokens_stored(wallet) == 0


def test_account_create_prints_the_remittance_code_then_the_id_as_the_last_line(app, client, admin_token):
    result = cli(app, "account", "create", "--name", "Acme", "--settlement", "cloud")
    assert result.exit_code == 0, result.output
    account_id = result.output.strip().splitlines()[-1]
    account = client.get(f"/api/v1/accounts/{account_id}", headers=bearer(admin_token)).get_json()
    assert account["settlement"] == "cloud"
    assert f"remittance code {account['remittance_code']}" in result.output


@pytest.mark.parametrize("name", ["", "x" * 201, "Caf\udce9"])
def test_account_create_refuses_a_bad_name_with_a_message(app, name):
    result = cli(app, "account", "create", "--name", name)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.output.strip()


def test_jobs_list_names_every_documented_job(app):
    result = cli(app, "jobs", "list")
    assert result.exit_code == 0
    listed = {line.split("\t")[0] for line in result.output.splitlines()}
    assert set(DOCUMENTED_JOBS) <= listed


def test_jobs_run_exits_3_when_the_job_is_running_elsewhere(app, wallet):
    assert acquire_lease(wallet, "ledger-verify", "other-host:1", timedelta(minutes=2))
    try:
        result = cli(app, "jobs", "run", "ledger-verify")
    finally:
        release_lease(wallet, "ledger-verify", "other-host:1")
    assert result.exit_code == 3
    assert "running elsewhere" in result.output


def test_db_upgrade_creates_the_schema_of_a_new_database(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = cli(make_app(url), "db", "upgrade")
    assert result.exit_code == 0, result.output
    engine = create_engine(url)
    assert {"accounts", "ledger_entries", "api_tokens"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_db_upgrade_to_an_unknown_revision_is_a_message_and_a_non_zero_exit(make_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = cli(make_app(url), "db", "upgrade", "no-such-revision")
    assert result.exit_code == 2, (result.output, result.exception)
    assert "error:" in result.output and "no-such-revision" in result.output


def alembic_revision(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        revision = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    engine.dispose()
    return revision


def test_db_upgrade_says_the_revision_the_database_is_at(make_app, tmp_path):
    from app.adapters.db.migrate import current_heads

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = make_app(url)
    result = cli(app, "db", "upgrade", "0002")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "database at 0002"
    result = cli(app, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"database at {current_heads()[0]}"


def test_db_upgrade_to_a_revision_the_database_is_past_exits_non_zero_naming_where_it_is(make_app, tmp_path):
    # Alembic's upgrade never goes back: the schema stays newer than the revision asked for, and
    # "database at 0002" would send an operator rolling back to start old code on it.
    from app.adapters.db.migrate import current_heads

    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    app = make_app(url)
    assert cli(app, "db", "upgrade").exit_code == 0
    result = cli(app, "db", "upgrade", "0002")
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "0002" in result.output and current_heads()[0] in result.output
    assert "database at 0002" not in result.output
    assert alembic_revision(url) == current_heads()[0]


EXAMPLE_ENV = Path(__file__).resolve().parents[2] / "config" / "production.env.example"


def example_assignments() -> dict[str, str]:
    """The example's NAME=VALUE lines, with the value as written."""
    pairs = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


def test_the_example_production_env_loads_whole_with_the_shell_command_it_names():
    # Its header says: `set -a; . FILE; set +a`. A value with spaces must be quoted for that,
    # or the shell runs its second word as a command and leaves the variable unset.
    names = list(example_assignments())
    script = 'set -a; . "$1"; set +a; shift; for n in "$@"; do printf "%s=%s\\0" "$n" "${!n-<unset>}"; done'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(EXAMPLE_ENV), *names],
        capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}, timeout=30,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    loaded = dict(item.split("=", 1) for item in result.stdout.split("\0") if item)
    assert loaded["BANK_NAME"] == "Example Bank, Shanghai Branch"
    assert loaded["BANK_ACCOUNT_NAME"] == "Example Company Ltd."
    assert loaded["BANK_ACCOUNT_NUMBER"] == "0000 0000 0000 0000 000"
    assert "<unset>" not in loaded.values()


def test_the_example_production_envs_optional_values_are_the_defaults():
    # The example says of its last lines "these are the defaults": copying them must change nothing.
    from app.config import load_settings

    text = EXAMPLE_ENV.read_text()
    optional = text[text.index("# Optional; these are the defaults."):]
    values = {
        name.strip(): value.strip()
        for name, _, value in (line.partition("=") for line in optional.splitlines())
        if name.strip() and not name.lstrip().startswith("#")
    }
    assert values, "the example lists its optional variables"
    base = {"APP_ENV": "development", "SECRET_KEY": "k" * 40, "INSTANCE_PATH": "/nonexistent"}
    with_values, without = load_settings({**base, **values}), load_settings(base)
    for name in values:
        field = name.lower()
        assert getattr(with_values, field) == getattr(without, field), name


# Nothing listens on port 1: the database cannot be reached.
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/wallet"


@pytest.mark.parametrize("args", [
    ("ledger", "verify"),
    ("token", "create", "--role", "admin"),
    ("token", "list"),
    ("token", "revoke", "1"),
    ("account", "create", "--name", "Acme"),
    ("db", "upgrade"),
    ("jobs", "run", "ledger-verify"),
    ("jobs", "run", "alipay-poll"),
])
def test_a_database_that_cannot_be_reached_is_one_error_line_and_exit_4_not_a_traceback(make_app, args):
    result = cli(make_app(UNREACHABLE), *args)
    assert result.exit_code == 4, (result.output, result.exception)
    assert result.output.startswith("error: the database failed: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output
