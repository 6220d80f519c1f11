"""Domain errors; the web and CLI layers translate them in one place each."""
from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can be told about.

    ``status`` is the HTTP status the web layer answers with and ``code`` the stable
    machine-readable name that clients switch on.
    """

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, *, code: str | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class InvalidMoney(InvalidInput):
    code = "invalid_amount"
    title = "Invalid amount"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class AccountNotFound(NotFound):
    code = "account_not_found"

    def __init__(self, account_id: str):
        super().__init__(f"account {account_id} does not exist")


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InsufficientFunds(Conflict):
    code = "insufficient_funds"
    title = "Insufficient funds"


class BalanceLimit(Conflict):
    code = "balance_limit"
    title = "Balance limit reached"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    title = "Too many attempts"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class GatewayError(DomainError):
    """The payment gateway could not be used (network, bad signature, malformed answer)."""

    status = 502
    code = "gateway_error"
    title = "Payment gateway error"


class GatewayTimeout(GatewayError):
    status = 504
    code = "gateway_timeout"
    title = "Payment gateway timeout"


class GatewayRejected(DomainError):
    """The gateway answered, signed, with a business refusal (e.g. Alipay ``40004``)."""

    status = 422
    code = "gateway_rejected"
    title = "Payment gateway rejected the request"


class StatementRejected(InvalidInput):
    """A statement file refused whole; ``line`` is counted in the file, header included."""

    code = "statement_rejected"
    title = "Statement file rejected"

    def __init__(self, detail: str, *, line: int | None = None, code: str | None = None):
        if line is not None:
            detail = f"line {line}: {detail}"
        super().__init__(detail, code=code, line=line)
        self.line = line
