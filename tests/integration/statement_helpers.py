"""Helpers for the statement import and reconciliation tests."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.adapters.db.models import Account, Statement, StatementLine
from app.services import ledger
from tests.conftest import bearer

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "statements"
HEADER = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"


@pytest.fixture
def finance(token_for):
    """A finance token."""
    return token_for("finance")


@pytest.fixture
def payer(new_account):
    """An account that pays by bank transfer."""
    return new_account("Payer Co")


def csv_file(*rows: str) -> bytes:
    """A canonical CSV statement with the given data rows."""
    return (HEADER + "".join(row + "\n" for row in rows)).encode("utf-8")


def row(memo: str, amount: str = "100.00", *, tid: str = "", currency: str = "CNY",
        payer: str = "6222021234567890", name: str = "张三", at: str = "2026-11-26") -> str:
    return f"{tid},{at},{amount},{currency},{name},{payer},{memo}"


def upload(client, token, data: bytes, *, filename: str = "statement.csv", format: str | None = None):
    form = {"file": (io.BytesIO(data), filename)}
    if format is not None:
        form["format"] = format
    return client.post(
        "/api/v1/statements", data=form, headers=bearer(token), content_type="multipart/form-data"
    )


def lines(client, token, status: str | None = None) -> list[dict]:
    query = f"?status={status}&limit=200" if status else "?limit=200"
    response = client.get("/api/v1/statement-lines" + query, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["lines"]


def balances(wallet, account_id: str) -> tuple[int, int, int]:
    """(cash, arrears, invoiceable) in fen."""
    with wallet.db.sessions() as session:
        account = session.get(Account, account_id)
        return account.cash_fen, account.arrears_fen, account.invoiceable_fen


def stored_counts(wallet) -> tuple[int, int]:
    """(statements, lines) stored."""
    with wallet.db.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Statement)),
            session.scalar(select(func.count()).select_from(StatementLine)),
        )


def assert_ledger_clean(wallet) -> None:
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == []
        assert ledger.verify_references(session) == []


def spend(client, admin_token, account_id: str, amount: str, bill_id: str) -> None:
    """Spend from the account's wallet with a pay-as-you-go bill."""
    workspace = f"ws-{account_id}"
    client.post(
        f"/api/v1/accounts/{account_id}/workspaces",
        json={"workspace_id": workspace},
        headers=bearer(admin_token),
    )
    response = client.post(
        "/api/v1/bills",
        json={"bill_id": bill_id, "workspace_id": workspace, "product": "general", "amount": amount},
        headers=bearer(admin_token),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
