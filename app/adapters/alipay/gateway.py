"""The Alipay gateway behind a small interface, and the real HTTP client.

Requests are built and signed by python-alipay-sdk (``AliPay.build_body`` / ``sign_data``).
Everything else is ours, because the SDK's own transport cannot be used cleanly:

* it sends with ``urllib`` GET and one timeout, without a session, connect/read timeouts or a
  way to tell a timeout from a refusal;
* it stamps ``timestamp`` with the server's local time; Alipay expects Beijing time;
* its response check counts braces without minding strings, finds the response key anywhere
  in the text, and raises its own exception types.

So we send with ``requests``, locate the signed ``*_response`` text ourselves
(``response.top_level_members``), verify it with ``cryptography`` *before* reading it, and map
every outcome onto the domain's gateway errors.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import requests
from alipay import AliPay
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from app.domain.errors import GatewayError, GatewayRejected, GatewayTimeout, InvalidMoney
from app.domain.money import format_fen, parse_amount

from .beijing import format_beijing, parse_beijing
from .keys import load_alipay_public_key, load_app_private_key, private_key_pem, public_key_pem
from .response import MalformedResponse, response_key, top_level_members
from .signing import SIGN_TYPE, verify

logger = logging.getLogger(__name__)

TRADE_STATUSES = frozenset(
    {"WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_FINISHED", "TRADE_CLOSED", "NOT_EXIST"}
)
PAID_STATUSES = frozenset({"TRADE_SUCCESS", "TRADE_FINISHED"})
_CODE_SUCCESS = "10000"
_CODE_BUSINESS_FAILED = "40004"
_TRADE_NOT_EXIST = "ACQ.TRADE_NOT_EXIST"
# Business-failure sub_codes that report Alipay's own trouble, not a refusal: the documented
# remedy is to send the same request again (for precreate: a new order), so they are gateway
# errors like a timeout. AQC.SYSTEM_ERROR is a spelling Alipay's documentation lists too.
_SYSTEM_ERRORS = frozenset({"ACQ.SYSTEM_ERROR", "AQC.SYSTEM_ERROR"})
_OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")
_SAFE_CODE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Precreated:
    out_trade_no: str
    qr_code: str


@dataclass(frozen=True)
class TradeStatus:
    out_trade_no: str
    trade_no: str | None
    status: str  # "WAIT_BUYER_PAY" | "TRADE_SUCCESS" | "TRADE_FINISHED" | "TRADE_CLOSED" | "NOT_EXIST"
    total_amount_fen: int | None
    paid_at: datetime | None  # send_pay_date, Beijing time made aware

    @property
    def is_paid(self) -> bool:
        return self.status in PAID_STATUSES


class AlipayGateway(Protocol):
    """What the services need from Alipay; the HTTP client and test fakes implement it."""

    def precreate(
        self, *, out_trade_no: str, amount_fen: int, subject: str, notify_url: str, expires_at: datetime
    ) -> Precreated: ...

    def query(self, out_trade_no: str) -> TradeStatus: ...

    def close(self, out_trade_no: str) -> bool: ...


class HttpAlipayGateway:
    """Alipay's open API over HTTPS: requests signed by the SDK, responses verified before use."""

    def __init__(
        self,
        app_id: str,
        app_private_key: str | RSAPrivateKey,
        alipay_public_key: str | RSAPublicKey,
        gateway_url: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10,
        session: requests.Session | None = None,
        now: Callable[[], datetime] | None = None,
    ):
        private_key = (
            app_private_key
            if isinstance(app_private_key, RSAPrivateKey)
            else load_app_private_key(app_private_key)
        )
        self._alipay_public_key = (
            alipay_public_key
            if isinstance(alipay_public_key, RSAPublicKey)
            else load_alipay_public_key(alipay_public_key)
        )
        # The SDK only builds and signs; the public key it insists on is never used by us.
        self._sdk = AliPay(
            appid=app_id,
            app_notify_url=None,
            app_private_key_string=private_key_pem(private_key),
            alipay_public_key_string=public_key_pem(self._alipay_public_key),
            sign_type=SIGN_TYPE,
        )
        self._gateway_url = gateway_url
        self._timeout = (connect_timeout, read_timeout)
        self._session = session or requests.Session()
        self._now = now or (lambda: datetime.now(timezone.utc))

    def precreate(
        self, *, out_trade_no: str, amount_fen: int, subject: str, notify_url: str, expires_at: datetime
    ) -> Precreated:
        """Create a QR-code trade (``alipay.trade.precreate``) payable until ``expires_at``."""
        _check_out_trade_no(out_trade_no)
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
            raise ValueError("amount_fen must be a positive int")
        if not subject or not notify_url:
            raise ValueError("subject and notify_url are required")
        biz_content = {
            "out_trade_no": out_trade_no,
            "total_amount": format_fen(amount_fen),
            "subject": subject,
            # Absolute expiry: precreate's relative timeout_express only starts at the scan,
            # which would let a QR shown long ago be paid long after our order expired.
            "time_expire": format_beijing(expires_at),
        }
        payload = self._call(
            "alipay.trade.precreate", biz_content, out_trade_no, notify_url=notify_url
        )
        _check_same_trade(payload, out_trade_no)
        qr_code = payload.get("qr_code")
        if not isinstance(qr_code, str) or not qr_code:
            raise self._malformed(out_trade_no, "precreate answer has no qr_code")
        return Precreated(out_trade_no=out_trade_no, qr_code=qr_code)

    def query(self, out_trade_no: str) -> TradeStatus:
        """Ask Alipay for a trade's status (``alipay.trade.query``); NOT_EXIST before the scan."""
        _check_out_trade_no(out_trade_no)
        payload = self._call(
            "alipay.trade.query", {"out_trade_no": out_trade_no}, out_trade_no, not_exist_ok=True
        )
        if payload is None:
            return TradeStatus(out_trade_no, None, "NOT_EXIST", None, None)
        _check_same_trade(payload, out_trade_no)
        status = payload.get("trade_status")
        if status not in TRADE_STATUSES or status == "NOT_EXIST":
            raise self._malformed(out_trade_no, "query answer has an unknown trade_status")
        total_fen = self._amount(
            payload, "total_amount", out_trade_no, required=status in PAID_STATUSES
        )
        trade_no = payload.get("trade_no")
        if trade_no is not None and not isinstance(trade_no, str):
            raise self._malformed(out_trade_no, "query answer has a malformed trade_no")
        paid_at = None
        if payload.get("send_pay_date"):
            try:
                paid_at = parse_beijing(payload["send_pay_date"])
            except ValueError:
                raise self._malformed(
                    out_trade_no, "query answer has a malformed send_pay_date"
                ) from None
        return TradeStatus(out_trade_no, trade_no or None, status, total_fen, paid_at)

    def close(self, out_trade_no: str) -> bool:
        """Close an unpaid trade (``alipay.trade.close``); False when Alipay has no such trade yet."""
        _check_out_trade_no(out_trade_no)
        payload = self._call(
            "alipay.trade.close", {"out_trade_no": out_trade_no}, out_trade_no, not_exist_ok=True
        )
        if payload is None:
            return False
        _check_same_trade(payload, out_trade_no, required=False)
        return True

    # -- transport -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        biz_content: dict[str, str],
        out_trade_no: str,
        *,
        not_exist_ok: bool = False,
        **top_level: str,
    ) -> dict | None:
        """Send one signed request; return the verified payload, or None for TRADE_NOT_EXIST."""
        log = {"out_trade_no": out_trade_no, "alipay_method": method}
        body = self._signed_body(method, biz_content, top_level)
        try:
            answer = self._session.post(
                self._gateway_url,
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            logger.warning("alipay gateway timed out", extra=log)
            raise GatewayTimeout(
                "Alipay did not answer in time", out_trade_no=out_trade_no
            ) from None
        except requests.RequestException:
            logger.warning("alipay gateway unreachable", extra=log)
            raise GatewayError(
                "Alipay's gateway could not be reached", out_trade_no=out_trade_no
            ) from None
        if answer.status_code != 200:
            logger.warning(
                "alipay gateway answered a non-200 status",
                extra={**log, "http_status": answer.status_code},
            )
            raise GatewayError(
                f"Alipay's gateway answered HTTP {answer.status_code}", out_trade_no=out_trade_no
            )
        payload = self._verified_payload(answer.content, method, out_trade_no)
        return self._outcome(payload, method, out_trade_no, not_exist_ok=not_exist_ok)

    def _signed_body(
        self, method: str, biz_content: dict[str, str], top_level: dict[str, str]
    ) -> bytes:
        data = self._sdk.build_body(
            method, dict(biz_content), timestamp=format_beijing(self._now()), **top_level
        )
        # Alipay leaves empty values out of the signed content; the SDK's sign_data() does not.
        # Never sending empty values keeps both rules identical.
        if any(value in (None, "") for value in data.values()):
            raise ValueError("a request parameter is empty")
        return self._sdk.sign_data(data).encode("ascii")

    def _verified_payload(self, content: bytes, method: str, out_trade_no: str) -> dict:
        log = {"out_trade_no": out_trade_no, "alipay_method": method}
        try:
            text = content.decode("utf-8")
            members = top_level_members(text)
        except (UnicodeDecodeError, MalformedResponse):
            logger.warning("alipay gateway answer is not a JSON object", extra=log)
            raise GatewayError(
                "Alipay's gateway answered something that is not JSON", out_trade_no=out_trade_no
            ) from None
        expected = response_key(method)
        if "error_response" in members or expected not in members:
            # error_response bodies come unsigned: read only codes from them, for the log.
            error = members.get("error_response")
            value = error.value if error is not None and isinstance(error.value, dict) else {}
            logger.warning(
                "alipay gateway answered an error response",
                extra={
                    **log,
                    "alipay_code": _safe(value.get("code")),
                    "alipay_sub_code": _safe(value.get("sub_code")),
                },
            )
            raise GatewayError(
                f"Alipay answered an error (code {_safe(value.get('code')) or 'unknown'}, "
                f"sub_code {_safe(value.get('sub_code')) or 'none'})",
                out_trade_no=out_trade_no,
            )
        signed = members[expected]
        signature = members.get("sign")
        if (
            signature is None
            or not isinstance(signature.value, str)
            or not verify(self._alipay_public_key, signed.raw, signature.value, "utf-8")
        ):
            logger.error("alipay gateway answer failed signature verification", extra=log)
            raise GatewayError(
                "Alipay's answer is not signed by Alipay's key",
                code="gateway_bad_signature",
                out_trade_no=out_trade_no,
            )
        if not isinstance(signed.value, dict):
            raise self._malformed(out_trade_no, "response member is not an object")
        return signed.value

    def _outcome(
        self, payload: dict, method: str, out_trade_no: str, *, not_exist_ok: bool
    ) -> dict | None:
        code = payload.get("code")
        if code == _CODE_SUCCESS:
            return payload
        sub_code = _safe(payload.get("sub_code"))
        log = {
            "out_trade_no": out_trade_no,
            "alipay_method": method,
            "alipay_code": _safe(code),
            "alipay_sub_code": sub_code,
        }
        if code == _CODE_BUSINESS_FAILED:
            if sub_code == _TRADE_NOT_EXIST and not_exist_ok:
                logger.info("alipay has no such trade yet", extra=log)
                return None
            if sub_code in _SYSTEM_ERRORS:
                logger.warning("alipay answered a system error", extra=log)
                raise GatewayError(
                    f"Alipay answered a system error (sub_code {sub_code}); the outcome is unknown",
                    out_trade_no=out_trade_no,
                )
            logger.info("alipay refused the request", extra=log)
            sub_msg = payload.get("sub_msg")
            if isinstance(sub_msg, str) and sub_msg:
                detail = sub_msg[:200]
            else:
                detail = f"Alipay refused: {sub_code}"
            raise GatewayRejected(
                detail, code=f"alipay_{sub_code or 'BUSINESS_FAILED'}", out_trade_no=out_trade_no
            )
        # 20000 (service unavailable), 20001 (authorisation), 40001/40002 (missing or invalid
        # parameters, our signature refused), 40003, 40006 (permissions): ours or theirs to fix.
        logger.warning("alipay gateway answered a failure code", extra=log)
        raise GatewayError(
            f"Alipay answered code {_safe(code) or 'unknown'} (sub_code {sub_code or 'none'})",
            out_trade_no=out_trade_no,
        )

    def _amount(
        self, payload: dict, field: str, out_trade_no: str, *, required: bool
    ) -> int | None:
        value = payload.get(field)
        if value is None:
            if required:
                raise self._malformed(out_trade_no, f"answer has no {field}")
            return None
        try:
            return parse_amount(value, field=field)
        except InvalidMoney:
            raise self._malformed(out_trade_no, f"answer has a malformed {field}") from None

    def _malformed(self, out_trade_no: str, detail: str) -> GatewayError:
        logger.warning("alipay gateway answer is malformed", extra={"out_trade_no": out_trade_no})
        return GatewayError(f"Alipay's answer is malformed: {detail}", out_trade_no=out_trade_no)


def _check_out_trade_no(out_trade_no: str) -> None:
    if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.fullmatch(out_trade_no):
        raise ValueError("out_trade_no must be 1-64 letters, digits or underscores")


def _check_same_trade(payload: dict, out_trade_no: str, *, required: bool = True) -> None:
    # A signed answer about another trade would be Alipay's bug or a replayed response; either
    # way it must not be taken as news about this one.
    answered = payload.get("out_trade_no")
    if answered is None and not required:
        return
    if answered != out_trade_no:
        logger.error("alipay answered about another trade", extra={"out_trade_no": out_trade_no})
        raise GatewayError("Alipay's answer is about another trade", out_trade_no=out_trade_no)


def _safe(value: object) -> str:
    """Reduce a code from the gateway to a short, log- and header-safe token."""
    if not isinstance(value, str):
        return ""
    return _SAFE_CODE.sub("", value)[:64]
