"""Accounts, tokens, page sessions, the ledger, Alipay top-up orders and notifies, jobs, idempotent requests."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import BigIntPK, Fen, UTCDateTime
from .base import Base


class Account(Base):
    """A billing account: the wallet. Cached balances equal the sums of its ledger entries."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("settlement IN ('guance', 'cloud')", name="settlement"),
        CheckConstraint("cash_fen >= 0", name="cash_not_negative"),
        CheckConstraint("arrears_fen >= 0", name="arrears_not_negative"),
        CheckConstraint("invoiceable_fen >= 0", name="invoiceable_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    settlement: Mapped[str] = mapped_column(String(16))
    remittance_code: Mapped[str] = mapped_column(String(16), unique=True)
    cash_fen: Mapped[int] = mapped_column(Fen, default=0)
    arrears_fen: Mapped[int] = mapped_column(Fen, default=0)
    invoiceable_fen: Mapped[int] = mapped_column(Fen, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Workspace(Base):
    """A workspace bills against exactly one account."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """An API token, stored only as a SHA-256 hash (tokens carry 256 bits of entropy)."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'finance', 'account')", name="role"),
        CheckConstraint(
            "(role = 'account') = (account_id IS NOT NULL)", name="account_role_has_account"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)



class PageSession(Base):
    """A signed-in browser session: the cookie carries a random id, this row only its hash.

    Signing out ends the row, so a copy of the cookie (kept from before) opens nothing.
    """

    __tablename__ = "page_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LedgerTransaction(Base):
    """One money movement (a top-up, a bill, an expiry...): the unit of exactly-once."""

    __tablename__ = "ledger_transactions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # No foreign keys on the ledger: see ``LedgerEntry``. Not indexed: account history reads
    # entries, and every index costs each bulk credit's insert (migration 0006).
    account_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(200), default="")
    memo: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerEntry(Base):
    """One signed change of one balance; append-only.

    ``bucket`` is ``cash``, ``arrears``, ``invoiceable``, ``coupon`` or ``prepaid_card``;
    the last two name their unit in ``unit_id``.

    The ledger tables carry no foreign keys: they are append-only and written only by the
    services, which take the account id from the account row they hold locked, and every row is
    the busiest write of its path. A foreign key check costs a lookup and a row lock (with its
    WAL record) per inserted row; on PostgreSQL that was half of the database's work for a
    credited notify and a third for a statement import (docs/benchmarks.md). ``ledger verify``
    checks the references instead: every entry's transaction exists and has the entry's
    account, and every transaction's account exists.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "bucket IN ('cash', 'arrears', 'invoiceable', 'coupon', 'prepaid_card')",
            name="bucket",
        ),
        CheckConstraint("amount_fen <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Not indexed: nothing looks entries up by their transaction (migration 0006).
    transaction_id: Mapped[int] = mapped_column(BigIntPK)
    idempotency_key: Mapped[str] = mapped_column(String(240), unique=True)
    account_id: Mapped[str] = mapped_column(String(32))
    bucket: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(BigIntPK, nullable=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    balance_after_fen: Mapped[int] = mapped_column(Fen)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TopupOrder(Base):
    """An Alipay QR top-up order; ``out_trade_no`` is unique and unguessable."""

    __tablename__ = "topup_orders"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'paid', 'closed')", name="status"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_topup_orders_status_created_at", "status", "created_at"),
    )

    out_trade_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    subject: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    qr_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_queried_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    credited_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # notify | query


class AlipayNotification(Base):
    """Every notify received, verified or not: the raw body and what was done with it."""

    __tablename__ = "alipay_notifications"
    __table_args__ = (
        # Finance's review list; partial, so the notifies that credit (nearly all) never touch it.
        Index(
            "ix_alipay_notifications_needs_review",
            "received_at",
            "id",
            postgresql_where=text("needs_review"),
            sqlite_where=text("needs_review"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    charset: Mapped[str] = mapped_column(String(16), default="")
    notify_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    out_trade_no: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    trade_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)


class IdempotentRequest(Base):
    """A POST made with an ``Idempotency-Key``: its request hash and the first response."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(100))  # the calling token
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    response_content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobRun(Base):
    """A claimed run of a scheduled job; the unique slot makes each run happen once."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job_name", "slot"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_name: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), default="running")
    detail: Mapped[str] = mapped_column(Text, default="")


class JobLock(Base):
    """A lease on a job name, so two runs of one job never overlap."""

    __tablename__ = "job_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
