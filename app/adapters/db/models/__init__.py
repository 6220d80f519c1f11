"""All mapped tables; importing this package registers every model on ``Base.metadata``."""
from .base import UNIT_MODELS, Base
from .core import (
    Account,
    AlipayNotification,
    ApiToken,
    IdempotentRequest,
    JobLock,
    JobRun,
    LedgerEntry,
    LedgerTransaction,
    PageSession,
    TopupOrder,
    Workspace,
)
from .wallet import (
    ActivationFailure,
    Bill,
    BillAllocation,
    CloudCharge,
    Coupon,
    CouponCode,
    PrepaidCard,
)
from .statements import Statement, StatementLine, StatementLineAction

__all__ = [
    "UNIT_MODELS",
    "Account",
    "AlipayNotification",
    "ApiToken",
    "Base",
    "IdempotentRequest",
    "JobLock",
    "JobRun",
    "LedgerEntry",
    "LedgerTransaction",
    "PageSession",
    "TopupOrder",
    "Workspace",
    "ActivationFailure",
    "Bill",
    "BillAllocation",
    "CloudCharge",
    "Coupon",
    "CouponCode",
    "PrepaidCard",
    "Statement",
    "StatementLine",
    "StatementLineAction",
]
