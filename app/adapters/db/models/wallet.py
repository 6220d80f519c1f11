"""Coupons, activation codes, prepaid cards, bills and their allocations, cloud charges."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..types import BigIntPK, Fen, UTCDateTime
from .base import UNIT_MODELS, Base

UNIT_STATUSES = "status IN ('active', 'used_up', 'expired')"


class Coupon(Base):
    """A coupon held by one account; its balance moves only through ledger entries."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("kind IN ('regular', 'discount')", name="kind"),
        CheckConstraint(UNIT_STATUSES, name="status"),
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        CheckConstraint("balance_fen >= 0", name="balance_not_negative"),
        CheckConstraint("balance_fen <= face_value_fen", name="balance_within_face_value"),
        CheckConstraint("expires_at > valid_from", name="window_not_empty"),
        Index("ix_coupons_account_id_status", "account_id", "status"),
        Index("ix_coupons_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    kind: Mapped[str] = mapped_column(String(16))
    face_value_fen: Mapped[int] = mapped_column(Fen)
    balance_fen: Mapped[int] = mapped_column(Fen, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    origin: Mapped[str] = mapped_column(String(16))  # allocation | code | card_bonus
    origin_ref: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CouponCode(Base):
    """A single-use activation code for a regular coupon, stored only as a keyed hash."""

    __tablename__ = "coupon_codes"
    __table_args__ = (
        CheckConstraint("kind IN ('regular')", name="kind"),
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        CheckConstraint("expires_at > valid_from", name="window_not_empty"),
        CheckConstraint(
            "(redeemed_at IS NULL) = (coupon_id IS NULL)", name="redeemed_has_coupon"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA256, hex
    kind: Mapped[str] = mapped_column(String(16), default="regular")
    face_value_fen: Mapped[int] = mapped_column(Fen)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100), default="")
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    redeemed_account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id"), nullable=True
    )
    coupon_id: Mapped[int | None] = mapped_column(
        ForeignKey("coupons.id"), nullable=True, unique=True
    )


class ActivationFailure(Base):
    """A failed activation attempt; counted per account and per token to stop guessing."""

    __tablename__ = "activation_failures"
    __table_args__ = (
        Index("ix_activation_failures_account_id_attempted_at", "account_id", "attempted_at"),
        Index("ix_activation_failures_token_id_attempted_at", "token_id", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    reason: Mapped[str] = mapped_column(String(32))  # code_unknown | code_used | code_expired
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PrepaidCard(Base):
    """A prepaid card bound to one account; its balance moves only through ledger entries."""

    __tablename__ = "prepaid_cards"
    __table_args__ = (
        CheckConstraint(UNIT_STATUSES, name="status"),
        CheckConstraint("origin IN ('purchase', 'allocation')", name="origin"),
        CheckConstraint("face_value_fen > 0", name="face_value_positive"),
        CheckConstraint("balance_fen >= 0", name="balance_not_negative"),
        CheckConstraint("balance_fen <= face_value_fen", name="balance_within_face_value"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("expires_at > valid_from", name="window_not_empty"),
        Index("ix_prepaid_cards_account_id_status", "account_id", "status"),
        Index("ix_prepaid_cards_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    face_value_fen: Mapped[int] = mapped_column(Fen)
    balance_fen: Mapped[int] = mapped_column(Fen, default=0)
    price_fen: Mapped[int] = mapped_column(Fen, default=0)  # cash paid; 0 when allocated
    status: Mapped[str] = mapped_column(String(16), default="active")
    origin: Mapped[str] = mapped_column(String(16))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100), default="")


class Bill(Base):
    """A settled pay-as-you-go bill: its request hash and the result returned for it."""

    __tablename__ = "bills"
    __table_args__ = (
        CheckConstraint("product IN ('general', 'sms', 'dial_testing')", name="product"),
        CheckConstraint("settlement IN ('guance', 'cloud')", name="settlement"),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        Index("ix_bills_account_id_created_at", "account_id", "created_at"),
    )

    bill_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    product: Mapped[str] = mapped_column(String(16))
    settlement: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Fen)
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)  # the JSON body answered, replayed verbatim
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillAllocation(Base):
    """One source's share of a bill, in the order drawn."""

    __tablename__ = "bill_allocations"
    __table_args__ = (
        UniqueConstraint("bill_id", "position"),
        CheckConstraint(
            "source IN ('regular_coupon', 'discount_coupon', 'prepaid_card', 'cash', 'arrears',"
            " 'cloud_account')",
            name="source",
        ),
        CheckConstraint("amount_fen > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(ForeignKey("bills.bill_id"))
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(BigIntPK, nullable=True)
    amount_fen: Mapped[int] = mapped_column(Fen)


class CloudCharge(Base):
    """What a cloud-settled bill left to the cloud marketplace account, recorded to be charged."""

    __tablename__ = "cloud_charges"
    __table_args__ = (CheckConstraint("amount_fen > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    bill_id: Mapped[str] = mapped_column(String(100), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Fen)
    status: Mapped[str] = mapped_column(String(16), default="recorded")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


UNIT_MODELS["coupon"] = Coupon
UNIT_MODELS["prepaid_card"] = PrepaidCard
