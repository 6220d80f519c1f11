"""Operator commands: ``flask --app wsgi db|token|account|ledger|jobs|scheduler``."""
from __future__ import annotations

import functools
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError

from .adapters.db.errors import first_line
from .domain.errors import DomainError
from .domain.money import format_fen


def _wallet():
    return current_app.extensions["wallet"]


# Exit status of a command whose database failed (unreachable, or broke off mid-command): not 1,
# which ``ledger verify`` uses for differences found, so that "could not check" stays distinct.
DATABASE_FAILED = 4
# Exit status of ``jobs run`` when the job ran but some of its items failed (an order Alipay
# could not be asked about, an inbox file that could not be imported).
JOB_ITEMS_FAILED = 5


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _database_failures_reported(command):
    """Answer a failing database with one ``error:`` line and DATABASE_FAILED, not a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DBAPIError as exc:
            _fail(f"the database failed: {first_line(exc)}", DATABASE_FAILED)

    return run


def _utf8_text(ctx, param, value):
    """Refuse text no database can store: bytes that are not UTF-8 arrive as lone surrogates."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise click.BadParameter("is not UTF-8 text") from None
    return value


db_cli = AppGroup("db", help="Create or migrate the database schema.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
@_database_failures_reported
def db_upgrade(revision: str):
    """Migrate the database to REVISION (default: the newest)."""
    from alembic.util import CommandError

    from .adapters.db.migrate import database_revision, named_revision, upgrade

    url = _wallet().settings.database_url
    try:
        upgrade(url, revision)
    except CommandError as exc:  # an unknown revision: the message names it
        _fail(str(exc), 2)
    reached = database_revision(url)
    target = named_revision(revision)
    if target is not None and reached != target:
        # Alembic's upgrade never goes back: the schema is newer than the revision asked for.
        _fail(f"the database is at {reached}, past {revision}; upgrade does not go back", 2)
    click.echo(f"database at {reached}")


token_cli = AppGroup("token", help="API tokens.")


@token_cli.command("create")
@click.option("--role", required=True, type=click.Choice(["admin", "finance", "account"]))
@click.option(
    "--account", "account_id", default=None, callback=_utf8_text, help="the account, for the account role"
)
@click.option("--label", default="", callback=_utf8_text, help="a note saying who or what uses the token")
@_database_failures_reported
def token_create(role: str, account_id: str | None, label: str):
    """Create a token; it is printed once, as the last line."""
    from .services.tokens import authenticate, create_token

    try:
        token = create_token(_wallet().db, _wallet().clock, role=role, account_id=account_id, label=label)
    except DomainError as exc:
        _fail(exc.detail, 2)
    token_id = authenticate(_wallet().db, token).token_id
    click.echo(f"created {role} token {token_id} (token revoke {token_id} ends it); store it now, it is not shown again:")
    click.echo(token)


@token_cli.command("list")
@_database_failures_reported
def token_list():
    """List the tokens: id, role, account, created, revoked, label; never the tokens themselves."""
    from .services.tokens import list_tokens

    for t in list_tokens(_wallet().db):
        revoked = t.revoked_at.isoformat() if t.revoked_at else "-"
        click.echo(f"{t.id}\t{t.role}\t{t.account_id or '-'}\t{t.created_at.isoformat()}\t{revoked}\t{_one_field(t.label)}")


def _one_field(text: str) -> str:
    """``text`` with tabs, line breaks and other control characters escaped (``\\t``, ``\\n``):
    one field of one line, whatever a label holds."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


@token_cli.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**63 - 1))
@_database_failures_reported
def token_revoke(token_id: int):
    """Revoke token TOKEN_ID: API calls with it get 401 and its page sessions end."""
    from .services.tokens import revoke_token

    if not revoke_token(_wallet().db, _wallet().clock, token_id):
        _fail(f"no unrevoked token has id {token_id}", 2)
    click.echo(f"token {token_id} revoked")


account_cli = AppGroup("account", help="Billing accounts.")


@account_cli.command("create")
@click.option("--name", required=True, callback=_utf8_text)
@click.option("--settlement", type=click.Choice(["guance", "cloud"]), default="guance")
@_database_failures_reported
def account_create(name: str, settlement: str):
    """Create an account and print its id and remittance code."""
    from .services.accounts import create_account

    try:
        view = create_account(_wallet().db, _wallet().clock, name=name, settlement=settlement)
    except DomainError as exc:
        _fail(exc.detail, 2)
    click.echo(f"remittance code {view.remittance_code}")
    click.echo(view.id)


ledger_cli = AppGroup("ledger", help="The ledger.")


@ledger_cli.command("verify")
@_database_failures_reported
def ledger_verify():
    """Compare every cached balance with its ledger entries, check the ledger's references and
    its agreement with orders and statement lines; exit 1 on any difference."""
    from .services.ledger import verify, verify_consistency, verify_references

    with _wallet().db.snapshot() as session:
        differences = verify(session)
        broken = verify_references(session)
        inconsistent = verify_consistency(session)
    for d in differences:
        unit = f" unit {d.unit_id}" if d.unit_id is not None else ""
        click.echo(
            f"DIFFERENCE account {d.account_id} {d.bucket}{unit}: cached {format_fen(d.cached_fen)}"
            f" ledger {format_fen(d.ledger_fen)}"
        )
    for b in broken:
        click.echo(f"BROKEN REFERENCE {b.table} {b.row_id}: {b.problem}")
    for i in inconsistent:
        click.echo(f"INCONSISTENT {i.table} {i.row_id}: {i.problem}")
    if differences or broken or inconsistent:
        _fail(f"{len(differences) + len(broken) + len(inconsistent)} difference(s)", 1)
    click.echo(
        "ledger clean: every cached balance equals its entries, every reference holds,"
        " every entry's balance follows from the one before, every paid order and matched line has its credit"
    )


jobs_cli = AppGroup("jobs", help="Scheduled jobs.")


@jobs_cli.command("list")
def jobs_list():
    """Name the scheduled jobs."""
    from .jobs import JOBS

    for job in JOBS.values():
        click.echo(f"{job.name}\tevery {job.interval_seconds}s\t{job.description}")


@jobs_cli.command("run")
@click.argument("name")
@_database_failures_reported
def jobs_run(name: str):
    """Run one job once, now."""
    from .jobs import JOBS, run_job

    if name not in JOBS:
        _fail(f"no job named {name!r}; known: {', '.join(JOBS)}", 2)
    try:
        summary = run_job(_wallet(), name)
    except DBAPIError:
        raise  # one line and DATABASE_FAILED, as for every command
    except Exception as exc:  # noqa: BLE001 - reported as the command's failure
        _fail(f"{name} failed: {first_line(exc)}", 1)
    if summary is None:
        _fail(f"{name} is running elsewhere; not run", 3)
    click.echo(summary)
    errors = getattr(summary, "errors", 0)
    if errors:
        _fail(f"{name} ran, but {errors} of its items failed (see the log); they wait for the next run", JOB_ITEMS_FAILED)


@click.command("scheduler")
def scheduler():
    """Run the job scheduler in the foreground (its own process; several may run)."""
    from .adapters.db.migrate import schema_refusal
    from .jobs import run_scheduler

    problem = schema_refusal(_wallet().db)
    if problem is not None:
        _fail(problem, 1)
    run_scheduler(_wallet())


def register_cli(app: Flask) -> None:
    for group in (db_cli, token_cli, account_cli, ledger_cli, jobs_cli):
        app.cli.add_command(group)
    app.cli.add_command(scheduler)
