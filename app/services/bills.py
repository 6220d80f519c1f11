"""Settling pay-as-you-go bills: the deduction order applied to locked rows, exactly once per bill.

This is the hot path. One transaction does, in few round trips: one look-up (the workspace's
account and any earlier settlement of the bill), the account row lock, one ``SELECT ... FOR
UPDATE`` for the spendable units, the ledger transaction ``bill:<bill_id>`` (whose unique key
makes the bill happen once), one executemany per unit table, the bill and its allocations.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ..adapters.cloud_marketplace import CloudMarketplace, RecordingCloudMarketplace
from ..adapters.db import Database
from ..adapters.db.models import Bill, BillAllocation, Coupon, PrepaidCard, Workspace
from ..domain.deduction import (
    ARREARS,
    CASH,
    CLOUD_ACCOUNT,
    PRODUCTS,
    Allocation,
    allocate,
)
from ..domain.errors import Conflict, InvalidInput
from ..domain.money import format_fen
from . import ledger
from .clock import Clock
from .ledger import Posting
from .locks import LockedUnit, lock_account, lock_spendable_units

log = logging.getLogger(__name__)

RECORDING_MARKETPLACE = RecordingCloudMarketplace()
_UNIT_TABLES = {"coupon": Coupon.__table__, "prepaid_card": PrepaidCard.__table__}
_WRITE_BACK = {
    bucket: update(table)
    .where(table.c.id == bindparam("unit_id"))
    .values(balance_fen=bindparam("new_balance"), status=bindparam("new_status"))
    for bucket, table in _UNIT_TABLES.items()
}


@dataclass(frozen=True)
class SettledBill:
    """The bill's result (the API body) and whether it was settled before this call."""

    result: dict
    replayed: bool


def bill_request_hash(bill_id: str, workspace_id: str, product: str, amount_fen: int) -> str:
    """Hash what identifies a bill request, so a replay can be told from a conflicting reuse."""
    canonical = json.dumps([bill_id, workspace_id, product, amount_fen], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def settle_bill(
    db: Database,
    clock: Clock,
    *,
    bill_id: str,
    workspace_id: str,
    product: str,
    amount_fen: int,
    marketplace: CloudMarketplace | None = None,
    actor: str = "",
) -> SettledBill:
    """Settle a bill once: draw its sources in order; a repeat returns the first result.

    The same ``bill_id`` with another workspace, product or amount is a 409 and moves nothing.
    """
    if not bill_id or len(bill_id) > 100:
        raise InvalidInput("bill_id must be 1 to 100 characters", code="invalid_field", field="bill_id")
    if product not in PRODUCTS:
        raise InvalidInput(f"product must be one of {', '.join(PRODUCTS)}", code="invalid_field", field="product")
    if not isinstance(amount_fen, int) or amount_fen <= 0:
        raise InvalidInput("amount must be greater than zero", code="invalid_amount", field="amount")
    request_hash = bill_request_hash(bill_id, workspace_id, product, amount_fen)
    try:
        with db.transaction() as session:
            return _settle(
                session,
                clock,
                bill_id=bill_id,
                workspace_id=workspace_id,
                product=product,
                amount_fen=amount_fen,
                request_hash=request_hash,
                marketplace=marketplace or RECORDING_MARKETPLACE,
                actor=actor,
            )
    except ledger.AlreadyRecorded:
        # A concurrent settlement of the same bill committed first; answer with its result.
        pass
    with db.sessions() as session:
        return _replay(session, bill_id, request_hash)


def _settle(
    session: Session,
    clock: Clock,
    *,
    bill_id: str,
    workspace_id: str,
    product: str,
    amount_fen: int,
    request_hash: str,
    marketplace: CloudMarketplace,
    actor: str,
) -> SettledBill:
    found = session.execute(
        select(
            select(Workspace.account_id)
            .where(Workspace.id == workspace_id)
            .scalar_subquery()
            .label("account_id"),
            select(Bill.request_hash).where(Bill.bill_id == bill_id).scalar_subquery().label("bill_hash"),
        )
    ).one()
    if found.bill_hash is not None:
        return _replay(session, bill_id, request_hash)
    if found.account_id is None:
        raise InvalidInput(
            f"workspace {workspace_id} is unknown", code="unknown_workspace", field="workspace_id"
        )

    now = clock.now()
    account = lock_account(session, found.account_id)
    locked = lock_spendable_units(session, account.id, now=now, coupons=product == "general")
    allocations = allocate(
        amount_fen,
        settlement=account.settlement,
        product=product,
        units=[unit.as_unit() for unit in locked],
        cash_fen=account.cash_fen,
        now=now,
    )
    units = {(unit.source, unit.id): unit for unit in locked}
    ledger.record(
        session,
        account,
        key=f"bill:{bill_id}",
        kind="bill",
        postings=_postings(allocations, units),
        now=now,
        reference=bill_id,
        actor=actor,
    )
    _write_units(session, [units[(a.source, a.unit_id)] for a in allocations if a.unit_id is not None])

    result = {
        "bill_id": bill_id,
        "amount": format_fen(amount_fen),
        "allocations": [
            {
                "source": a.source,
                "id": str(a.unit_id) if a.unit_id is not None else None,
                "amount": format_fen(a.amount_fen),
            }
            for a in allocations
        ],
    }
    session.execute(
        insert(Bill.__table__).values(
            bill_id=bill_id,
            account_id=account.id,
            workspace_id=workspace_id,
            product=product,
            settlement=account.settlement,
            amount_fen=amount_fen,
            request_hash=request_hash,
            result=json.dumps(result, separators=(",", ":")),
            created_at=now,
        )
    )
    session.execute(
        insert(BillAllocation.__table__),
        [
            {
                "bill_id": bill_id,
                "position": position,
                "source": a.source,
                "unit_id": a.unit_id,
                "amount_fen": a.amount_fen,
            }
            for position, a in enumerate(allocations)
        ],
    )
    cloud_fen = sum(a.amount_fen for a in allocations if a.source == CLOUD_ACCOUNT)
    if cloud_fen:
        marketplace.charge(
            session, account_id=account.id, bill_id=bill_id, amount_fen=cloud_fen, now=now
        )
    log.info(
        "bill settled",
        extra={"bill_id": bill_id, "account_id": account.id, "amount_fen": amount_fen},
    )
    return SettledBill(result, replayed=False)


def _postings(allocations: list[Allocation], units: dict) -> list[Posting]:
    postings = []
    for a in allocations:
        if a.unit_id is not None:
            unit: LockedUnit = units[(a.source, a.unit_id)]
            postings.append(Posting(unit.bucket, -a.amount_fen, unit))
        elif a.source == CASH:
            # Cash actually spent is what may be invoiced.
            postings += [Posting("cash", -a.amount_fen), Posting("invoiceable", a.amount_fen)]
        elif a.source == ARREARS:
            postings.append(Posting("arrears", a.amount_fen))
        # The cloud account's share is charged outside the wallet: no wallet balance moves.
    return postings


def _write_units(session: Session, touched: list[LockedUnit]) -> None:
    """Store the balances ``ledger.record`` computed; an emptied unit is used up."""
    for bucket, statement in _WRITE_BACK.items():
        rows = [
            {
                "unit_id": unit.id,
                "new_balance": unit.balance_fen,
                "new_status": "active" if unit.balance_fen else "used_up",
            }
            for unit in touched
            if unit.bucket == bucket
        ]
        if rows:
            session.execute(statement, rows)


def _replay(session: Session, bill_id: str, request_hash: str) -> SettledBill:
    row = session.execute(
        select(Bill.request_hash, Bill.result).where(Bill.bill_id == bill_id)
    ).one_or_none()
    if row is None:
        raise Conflict(f"bill {bill_id} collides with another movement", code="bill_conflict")
    if row.request_hash != request_hash:
        raise Conflict(
            f"bill {bill_id} was settled with another workspace, product or amount",
            code="bill_conflict",
        )
    return SettledBill(json.loads(row.result), replayed=True)
