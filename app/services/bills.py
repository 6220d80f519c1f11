"""Settling pay-as-you-go bills: the deduction order applied to locked rows, exactly once per bill.

This is the hot path, so it runs on ``fast_transaction``: on PostgreSQL one round trip locks the
billed account (finding any earlier settlement of the bill) and then its spendable units, and
one carries every write with the COMMIT: the ledger transaction ``bill:<bill_id>`` (whose unique
key makes the bill happen once), its entries, the new balances, the bill and its allocations.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

from ..adapters.cloud_marketplace import CloudMarketplace, RecordingCloudMarketplace
from ..adapters.db import Database
from ..adapters.db.fastpath import (
    DuplicateKey,
    FastTransaction,
    Prepared,
    PreparedRows,
    fast_transaction,
)
from ..adapters.db.models import Bill, BillAllocation, Coupon, PrepaidCard
from ..domain.deduction import ARREARS, CASH, CLOUD_ACCOUNT, PRODUCTS, Allocation, allocate
from ..domain.errors import Conflict, InvalidInput
from ..domain.money import format_fen
from .accounts import existing_account
from .clock import Clock
from .ledger_rows import Movement
from .locks import LOCK_BILLED_ACCOUNT, LOCK_CARDS, LOCK_UNITS, LockedUnit, locked_units

log = logging.getLogger(__name__)

RECORDING_MARKETPLACE = RecordingCloudMarketplace()

INSERT_BILL = Prepared(
    insert(Bill.__table__),
    columns=["bill_id", "account_id", "workspace_id", "product", "settlement", "amount_fen",
             "request_hash", "result", "created_at"],
)
INSERT_ALLOCATIONS = PreparedRows(
    BillAllocation.__table__, ["bill_id", "position", "source", "unit_id", "amount_fen"]
)
FIND_BILL = Prepared(select(Bill.request_hash, Bill.result).where(Bill.bill_id == bindparam("bill_id")))


def _write_back(model) -> Prepared:
    table = model.__table__
    return Prepared(
        update(table)
        .where(table.c.id == bindparam("unit"))
        .values(balance_fen=bindparam("balance"), status=bindparam("new_status"))
    )


WRITE_BACK = {"coupon": _write_back(Coupon), "prepaid_card": _write_back(PrepaidCard)}


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
        raise InvalidInput(
            "bill_id must be 1 to 100 characters", code="invalid_field", field="bill_id"
        )
    if product not in PRODUCTS:
        raise InvalidInput(
            f"product must be one of {', '.join(PRODUCTS)}", code="invalid_field", field="product"
        )
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise InvalidInput("amount must be greater than zero", code="invalid_amount", field="amount")
    request_hash = bill_request_hash(bill_id, workspace_id, product, amount_fen)
    try:
        with fast_transaction(db) as tx:
            return _settle(
                tx,
                clock,
                bill_id=bill_id,
                workspace_id=workspace_id,
                product=product,
                amount_fen=amount_fen,
                request_hash=request_hash,
                marketplace=marketplace or RECORDING_MARKETPLACE,
                actor=actor,
            )
    except DuplicateKey:
        # A concurrent settlement of the same bill committed first; answer with its result.
        log.info("bill settled concurrently; replaying", extra={"bill_id": bill_id})
    with fast_transaction(db) as tx:
        found = tx.rows(FIND_BILL, {"bill_id": bill_id})
    if not found:
        raise Conflict(f"bill {bill_id} collides with another movement", code="bill_conflict")
    return _replay(bill_id, request_hash, *found[0])


def _settle(
    tx: FastTransaction,
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
    now = clock.now()
    # Both locks in one round trip: the account row first, then its units (see locks).
    found, unit_rows = tx.rows_together(
        (LOCK_BILLED_ACCOUNT, {"bill_id": bill_id, "workspace_id": workspace_id}),
        (LOCK_UNITS if product == "general" else LOCK_CARDS, {"workspace_id": workspace_id, "now": now}),
    )
    if not found:
        earlier = tx.rows(FIND_BILL, {"bill_id": bill_id})
        if earlier:
            return _replay(bill_id, request_hash, *earlier[0])
        raise InvalidInput(
            f"workspace {workspace_id} is unknown", code="unknown_workspace", field="workspace_id"
        )
    account_id, settlement, cash_fen, arrears_fen, invoiceable_fen, earlier_hash, earlier = found[0]
    if earlier_hash is not None:
        return _replay(bill_id, request_hash, earlier_hash, earlier)

    units = locked_units(unit_rows)
    allocations = allocate(
        amount_fen,
        settlement=settlement,
        product=product,
        units=[unit.as_unit() for unit in units],
        cash_fen=cash_fen,
        now=now,
    )
    movement = Movement(
        key=f"bill:{bill_id}",
        account_id=account_id,
        kind="bill",
        now=now,
        balances={"cash": cash_fen, "arrears": arrears_fen, "invoiceable": invoiceable_fen},
        reference=bill_id,
        actor=actor,
    )
    touched = _post(movement, allocations, {(unit.source, unit.id): unit for unit in units})
    movement.write(tx)
    for bucket, statement in WRITE_BACK.items():
        tx.write(
            statement,
            [
                {"unit": unit.id, "balance": unit.balance_fen,
                 "new_status": "active" if unit.balance_fen else "used_up"}
                for unit in touched
                if unit.bucket == bucket
            ],
        )

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
    tx.write(
        INSERT_BILL,
        {
            "bill_id": bill_id,
            "account_id": account_id,
            "workspace_id": workspace_id,
            "product": product,
            "settlement": settlement,
            "amount_fen": amount_fen,
            "request_hash": request_hash,
            "result": json.dumps(result, separators=(",", ":")),
            "created_at": now,
        },
    )
    tx.insert_rows(
        INSERT_ALLOCATIONS,
        [
            {"bill_id": bill_id, "position": position, "source": a.source, "unit_id": a.unit_id,
             "amount_fen": a.amount_fen}
            for position, a in enumerate(allocations)
        ],
    )
    cloud_fen = sum(a.amount_fen for a in allocations if a.source == CLOUD_ACCOUNT)
    if cloud_fen:
        marketplace.charge(tx, account_id=account_id, bill_id=bill_id, amount_fen=cloud_fen, now=now)
    log.info(
        "bill settled",
        extra={"bill_id": bill_id, "account_id": account_id, "amount_fen": amount_fen},
    )
    return SettledBill(result, replayed=False)


def _post(movement: Movement, allocations: list[Allocation], units: dict) -> list[LockedUnit]:
    """Post each allocation to the ledger movement; return the units it drew on."""
    touched = []
    for a in allocations:
        if a.unit_id is not None:
            unit: LockedUnit = units[(a.source, a.unit_id)]
            movement.post(unit.bucket, -a.amount_fen, unit)
            touched.append(unit)
        elif a.source == CASH:
            # Cash actually spent is what may be invoiced.
            movement.post("cash", -a.amount_fen)
            movement.post("invoiceable", a.amount_fen)
        elif a.source == ARREARS:
            movement.post("arrears", a.amount_fen)
        # The cloud account's share is charged outside the wallet: no wallet balance moves.
    return touched


def _replay(bill_id: str, request_hash: str, stored_hash: str, stored_result: str) -> SettledBill:
    if stored_hash != request_hash:
        raise Conflict(
            f"bill {bill_id} was settled with another workspace, product or amount",
            code="bill_conflict",
        )
    return SettledBill(json.loads(stored_result), replayed=True)


@dataclass(frozen=True)
class BillLine:
    """A settled bill as its account sees it: what it cost and each source's share, in order."""

    bill_id: str
    product: str
    amount_fen: int
    created_at: datetime
    allocations: list[tuple[str, int]]


def recent_bills(db: Database, account_id: str, *, limit: int) -> list[BillLine]:
    """Return an account's newest bills with the sources that paid them."""
    with db.sessions() as session:
        existing_account(session, account_id)
        bills = session.execute(
            select(Bill.bill_id, Bill.product, Bill.amount_fen, Bill.created_at)
            .where(Bill.account_id == account_id)
            .order_by(Bill.created_at.desc(), Bill.bill_id.desc())
            .limit(limit)
        ).all()
        shares: dict[str, list[tuple[str, int]]] = {bill.bill_id: [] for bill in bills}
        if shares:
            rows = session.execute(
                select(BillAllocation.bill_id, BillAllocation.source, BillAllocation.amount_fen)
                .where(BillAllocation.bill_id.in_(list(shares)))
                .order_by(BillAllocation.bill_id, BillAllocation.position)
            ).all()
            for row in rows:
                shares[row.bill_id].append((row.source, row.amount_fen))
    return [
        BillLine(bill.bill_id, bill.product, bill.amount_fen, bill.created_at, shares[bill.bill_id])
        for bill in bills
    ]
