"""Imported bank statements, their lines, and finance's manual actions on lines."""
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
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import BigIntPK, Fen, UTCDateTime
from .base import Base

LINE_STATUSES = ("unmatched", "suggested", "matched", "ignored", "exception")


class Statement(Base):
    """One uploaded or inbox file, kept byte for byte; the same bytes are imported once."""

    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    format: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    # The statement's own bank account number; "" when the file states none.
    bank_account: Mapped[str] = mapped_column(String(100), default="")
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lines_total: Mapped[int] = mapped_column(Integer, default=0)
    lines_new: Mapped[int] = mapped_column(Integer, default=0)


class StatementLine(Base):
    """One transfer read from a statement; never deleted, only re-classified.

    ``identity_key`` is ``app.domain.statements.line_identities``' key, unique within the
    statement's bank account (``bank_account``, copied from the statement so that one
    constraint can enforce it). ``credits`` counts the ledger credits made for this line,
    so that a re-match after an undo gets a fresh ledger key.
    """

    __tablename__ = "statement_lines"
    __table_args__ = (
        UniqueConstraint("bank_account", "identity_key"),
        CheckConstraint(
            "status IN ('unmatched', 'suggested', 'matched', 'ignored', 'exception')",
            name="status",
        ),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("(status = 'matched') = (account_id IS NOT NULL)", name="matched_has_account"),
        Index("ix_statement_lines_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No foreign keys, like the ledger (see ``LedgerEntry``): lines are written in bulk by the
    # import (with their statement, in one transaction) and the reconciler, with account ids
    # they have checked; ``ledger verify`` checks the references.
    # Neither this nor ``account_id`` is indexed: no query looks lines up by them, and every
    # index costs each of an import's inserts (migration 0006).
    statement_id: Mapped[int] = mapped_column(BigIntPK)
    bank_account: Mapped[str] = mapped_column(String(100), default="")
    identity_key: Mapped[str] = mapped_column(String(200))
    line_no: Mapped[int] = mapped_column(Integer)
    raw: Mapped[str] = mapped_column(Text, default="")
    transaction_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    booked_at: Mapped[str] = mapped_column(String(40))  # ISO 8601 date or time, as the bank gave it
    amount_fen: Mapped[int] = mapped_column(Fen)
    currency: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(3))
    counterparty_name: Mapped[str] = mapped_column(Text, default="")
    counterparty_account: Mapped[str] = mapped_column(Text, default="")
    memo: Mapped[str] = mapped_column(Text, default="")
    reference: Mapped[str] = mapped_column(Text, default="")
    booked: Mapped[bool] = mapped_column(Boolean, default=True)
    reversal: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="unmatched")
    account_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    suggested_account_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    credits: Mapped[int] = mapped_column(Integer, default=0)
    matched_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class StatementLineAction(Base):
    """A manual action of finance on a line: who, what, why, when. Append-only."""

    __tablename__ = "statement_line_actions"
    __table_args__ = (CheckConstraint("action IN ('match', 'unmatch')", name="action"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("statement_lines.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    ledger_key: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
