"""The sandbox's memory: its own "Alipay" keypair, the merchant it serves, and its trades.

Trade states follow Alipay's QR flow: a precreated trade exists only on the QR code
(``CREATED``; query and close answer TRADE_NOT_EXIST) until the payer page is opened ("scanned"),
then ``WAIT_BUYER_PAY``, then ``TRADE_SUCCESS`` or ``TRADE_CLOSED``.
"""
from __future__ import annotations

import dataclasses
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ..beijing import BEIJING
from ..charsets import codec_for
from ..keys import generate_keypair, load_app_private_key, load_public_key, public_key_pem

CREATED = "CREATED"
WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
TRADE_SUCCESS = "TRADE_SUCCESS"
TRADE_CLOSED = "TRADE_CLOSED"
# Alipay's upper bound for one trade: 100,000,000.00 CNY.
MAX_TOTAL_FEN = 100_000_000 * 100
_RELATIVE_TIMEOUT = re.compile(r"([1-9][0-9]{0,4})([mhd])")


class SandboxRefusal(Exception):
    """A business refusal, answered as Alipay's ``40004`` with ``sub_code``/``sub_msg``."""

    def __init__(self, sub_code: str, sub_msg: str):
        super().__init__(sub_code)
        self.sub_code = sub_code
        self.sub_msg = sub_msg


@dataclass
class SandboxTrade:
    out_trade_no: str
    amount_fen: int
    total_amount: str
    subject: str
    notify_url: str | None
    token: str
    created_at: datetime
    expires_at: datetime | None  # absolute (time_expire), or set at the scan (timeout_express)
    relative_timeout: timedelta | None
    status: str = CREATED
    trade_no: str | None = None
    buyer_id: str | None = None
    buyer_logon_id: str | None = None
    scanned_at: datetime | None = None
    paid_at: datetime | None = None
    notify_charset: str | None = None


@dataclass(frozen=True)
class NotifyAttempt:
    out_trade_no: str
    notify_id: str
    url: str
    attempt: int
    body: bytes  # exactly what was posted
    status_code: int | None
    response_text: str | None
    error: str | None
    acknowledged: bool


class SandboxState:
    """Thread-safe in-memory trades plus the keys and settings of one sandboxed merchant."""

    def __init__(
        self,
        *,
        app_id: str,
        app_public_key: str | RSAPublicKey,
        return_url: str,
        seller_id: str | None = None,
        alipay_private_key: str | RSAPrivateKey | None = None,
        notify_charset: str = "utf-8",
        max_notify_attempts: int = 3,
        notify_retry_delay: float = 0.2,
        notify_timeout: float = 5.0,
        http: requests.Session | None = None,
        now: Callable[[], datetime] | None = None,
    ):
        if codec_for(notify_charset) is None:
            raise ValueError("notify_charset must be utf-8 or gbk")
        self.app_id = app_id
        self.app_public_key = (
            app_public_key if isinstance(app_public_key, RSAPublicKey) else load_public_key(app_public_key)
        )
        if alipay_private_key is None:
            alipay_private_key = generate_keypair()[0]
        self.alipay_private_key = (
            alipay_private_key
            if isinstance(alipay_private_key, RSAPrivateKey)
            else load_app_private_key(alipay_private_key)
        )
        self.return_url = return_url
        self.seller_id = seller_id or "2088" + _digits(12)
        self.notify_charset = notify_charset
        self.max_notify_attempts = max(1, max_notify_attempts)
        self.notify_retry_delay = notify_retry_delay
        self.notify_timeout = notify_timeout
        self.http = http
        self.now = now or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._trades: dict[str, SandboxTrade] = {}
        self._tokens: dict[str, str] = {}
        self._attempts: list[NotifyAttempt] = []

    @property
    def alipay_public_key(self) -> RSAPublicKey:
        """The sandbox's "Alipay public key", which the app must be configured with."""
        return self.alipay_private_key.public_key()

    @property
    def alipay_public_key_pem(self) -> str:
        return public_key_pem(self.alipay_public_key)

    # -- gateway operations ---------------------------------------------------------------

    def precreate(
        self,
        *,
        out_trade_no: str,
        amount_fen: int,
        total_amount: str,
        subject: str,
        notify_url: str | None,
        time_expire: datetime | None,
        relative_timeout: timedelta | None,
    ) -> SandboxTrade:
        """Create the trade behind a QR code, or return the same one for an identical retry."""
        if amount_fen > MAX_TOTAL_FEN:
            raise SandboxRefusal("ACQ.TOTAL_FEE_EXCEED", "订单金额超过限额")
        with self._lock:
            trade = self._trades.get(out_trade_no)
            if trade is not None:
                self._expire(trade)
                if trade.status == TRADE_SUCCESS:
                    raise SandboxRefusal("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
                if trade.status == TRADE_CLOSED:
                    raise SandboxRefusal("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
                if trade.amount_fen != amount_fen or trade.subject != subject:
                    raise SandboxRefusal("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
                return dataclasses.replace(trade)
            token = secrets.token_urlsafe(16)
            trade = SandboxTrade(
                out_trade_no=out_trade_no,
                amount_fen=amount_fen,
                total_amount=total_amount,
                subject=subject,
                notify_url=notify_url,
                token=token,
                created_at=self.now(),
                expires_at=time_expire,
                relative_timeout=relative_timeout,
            )
            self._trades[out_trade_no] = trade
            self._tokens[token] = out_trade_no
            return dataclasses.replace(trade)

    def query(self, out_trade_no: str | None = None, trade_no: str | None = None) -> SandboxTrade:
        """Return a scanned trade; TRADE_NOT_EXIST for unknown or not yet scanned ones."""
        with self._lock:
            trade = self._find(out_trade_no, trade_no)
            return dataclasses.replace(trade)

    def close(self, out_trade_no: str | None = None, trade_no: str | None = None) -> SandboxTrade:
        """Close an unpaid scanned trade, as ``alipay.trade.close`` does."""
        with self._lock:
            trade = self._find(out_trade_no, trade_no)
            if trade.status != WAIT_BUYER_PAY:
                raise SandboxRefusal("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            trade.status = TRADE_CLOSED
            return dataclasses.replace(trade)

    # -- payer operations -----------------------------------------------------------------

    def scan(self, token: str) -> SandboxTrade | None:
        """Open the payer page: the trade now exists at "Alipay" (WAIT_BUYER_PAY)."""
        with self._lock:
            trade = self._by_token(token)
            if trade is None:
                return None
            self._scan(trade)
            return dataclasses.replace(trade)

    def pay(self, token: str, *, charset: str) -> tuple[SandboxTrade, bool] | None:
        """Pay a trade; return (trade, newly_paid), or None for an unknown token."""
        with self._lock:
            trade = self._by_token(token)
            if trade is None:
                return None
            self._scan(trade)  # paying implies having scanned
            if trade.status == TRADE_SUCCESS:
                return dataclasses.replace(trade), False
            if trade.status != WAIT_BUYER_PAY:
                raise SandboxRefusal("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            trade.status = TRADE_SUCCESS
            trade.paid_at = self.now()
            trade.notify_charset = charset
            return dataclasses.replace(trade), True

    # -- inspection, for tests and the payer page ------------------------------------------

    def trade(self, out_trade_no: str) -> SandboxTrade | None:
        """Return a snapshot of a trade in any state, or None."""
        with self._lock:
            trade = self._trades.get(out_trade_no)
            if trade is not None:
                self._expire(trade)
            return dataclasses.replace(trade) if trade is not None else None

    def record_attempt(self, attempt: NotifyAttempt) -> None:
        """Remember one notify delivery attempt."""
        with self._lock:
            self._attempts.append(attempt)

    def notify_attempts(self, out_trade_no: str | None = None) -> list[NotifyAttempt]:
        """Return the notify delivery attempts so far, optionally for one trade."""
        with self._lock:
            return [a for a in self._attempts if out_trade_no is None or a.out_trade_no == out_trade_no]

    # -- internals (lock held) ------------------------------------------------------------

    def _find(self, out_trade_no: str | None, trade_no: str | None) -> SandboxTrade:
        trade = self._trades.get(out_trade_no) if out_trade_no else None
        if trade is None and trade_no:
            trade = next((t for t in self._trades.values() if t.trade_no == trade_no), None)
        if trade is None or trade.status == CREATED:
            raise SandboxRefusal("ACQ.TRADE_NOT_EXIST", "交易不存在")
        if trade_no and trade.trade_no != trade_no:
            raise SandboxRefusal("ACQ.TRADE_NOT_EXIST", "交易不存在")
        self._expire(trade)
        return trade

    def _by_token(self, token: str) -> SandboxTrade | None:
        out_trade_no = self._tokens.get(token)
        return self._trades.get(out_trade_no) if out_trade_no else None

    def _scan(self, trade: SandboxTrade) -> None:
        self._expire(trade)
        if trade.status != CREATED:
            return
        now = self.now()
        if trade.expires_at is not None and now >= trade.expires_at:
            return  # an expired QR code cannot be scanned any more
        trade.status = WAIT_BUYER_PAY
        trade.scanned_at = now
        if trade.relative_timeout is not None and trade.expires_at is None:
            trade.expires_at = now + trade.relative_timeout  # precreate counts from the scan
        trade.trade_no = now.astimezone(BEIJING).strftime("%Y%m%d") + "22001" + _digits(15)
        trade.buyer_id = "2088" + _digits(12)
        trade.buyer_logon_id = "sbx***@sandbox.com"

    def _expire(self, trade: SandboxTrade) -> None:
        if (
            trade.status == WAIT_BUYER_PAY
            and trade.expires_at is not None
            and self.now() >= trade.expires_at
        ):
            trade.status = TRADE_CLOSED


def parse_relative_timeout(text: str) -> timedelta | None:
    """Parse ``timeout_express`` (``15m``, ``2h``, ``1d``) into a duration; None if malformed."""
    match = _RELATIVE_TIMEOUT.fullmatch(text)
    if match is None:
        return None
    number, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=number), "h": timedelta(hours=number), "d": timedelta(days=number)}[unit]


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))
