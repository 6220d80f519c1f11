"""Accounts and workspaces."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..adapters.db import Database
from ..adapters.db.models import Account, Workspace
from ..domain.errors import AccountNotFound, Conflict, InvalidInput, NotFound
from ..domain.ids import random_id
from ..domain.remittance import generate_code
from .clock import Clock

SETTLEMENTS = ("guance", "cloud")


@dataclass(frozen=True)
class AccountView:
    id: str
    name: str
    settlement: str
    remittance_code: str


def _view(account: Account) -> AccountView:
    return AccountView(account.id, account.name, account.settlement, account.remittance_code)


def create_account(db: Database, clock: Clock, *, name: str, settlement: str) -> AccountView:
    """Create an account and issue its permanent remittance code."""
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput("name must be 1 to 200 characters", code="invalid_name")
    if settlement not in SETTLEMENTS:
        raise InvalidInput("settlement must be guance or cloud", code="invalid_settlement")
    for _attempt in range(5):
        account = Account(
            id=random_id("acc"),
            name=name,
            settlement=settlement,
            remittance_code=generate_code(),
            cash_fen=0,
            arrears_fen=0,
            invoiceable_fen=0,
            created_at=clock.now(),
        )
        try:
            with db.transaction() as session:
                session.add(account)
            return _view(account)
        except IntegrityError:
            # A remittance code collision is astronomically rare; draw another.
            continue
    raise Conflict("could not issue a unique remittance code", code="code_exhausted")


def existing_account(session: Session, account_id: str) -> Account:
    """Return an account's row, or raise AccountNotFound."""
    account = session.get(Account, account_id)
    if account is None:
        raise AccountNotFound(account_id)
    return account


def get_account(db: Database, account_id: str) -> AccountView:
    """Return one account or raise AccountNotFound."""
    with db.sessions() as session:
        return _view(existing_account(session, account_id))


def add_workspace(db: Database, clock: Clock, *, account_id: str, workspace_id: str) -> dict:
    """Attach a workspace to an account; a workspace belongs to one account only."""
    workspace_id = (workspace_id or "").strip() if isinstance(workspace_id, str) else ""
    if not workspace_id or len(workspace_id) > 100:
        raise InvalidInput("workspace_id must be 1 to 100 characters", code="invalid_workspace")
    try:
        with db.transaction() as session:
            existing_account(session, account_id)
            existing = session.get(Workspace, workspace_id)
            if existing is None:
                session.add(Workspace(id=workspace_id, account_id=account_id, created_at=clock.now()))
                return {"workspace_id": workspace_id, "account_id": account_id}
    except IntegrityError:
        # A concurrent request attached it first: answer as if it had come before this one.
        with db.sessions() as session:
            existing = session.get(Workspace, workspace_id)
    if existing.account_id != account_id:
        raise Conflict(f"workspace {workspace_id} belongs to another account", code="workspace_taken")
    return {"workspace_id": workspace_id, "account_id": account_id}


def account_for_workspace(session, workspace_id: str) -> str:
    """Return the account id a workspace bills to, or raise NotFound."""
    account_id = session.execute(
        select(Workspace.account_id).where(Workspace.id == workspace_id)
    ).scalar_one_or_none()
    if account_id is None:
        raise NotFound(f"workspace {workspace_id} is unknown", code="workspace_not_found")
    return account_id
