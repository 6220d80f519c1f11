"""RSA2 signatures as Alipay uses them: SHA256withRSA, PKCS#1 v1.5, base64.

Two different "content to sign" rules exist, and mixing them up is a classic bug:

* requests (``request_sign_content``): every parameter except ``sign``, empty values left out,
  sorted by name, ``k=v`` joined by ``&``, raw values (Alipay's ``AlipaySignature.getSignContent``);
* notifies and return redirects (``notify_sign_content``): every *received* parameter except
  ``sign`` and ``sign_type``, sorted, ``k=v`` joined by ``&``.

Decision for empty values in notifies: they are **kept** (``k=``). Alipay's documentation says
every parameter that came back is part of the content, and both its official Java SDK
(``getSignCheckContentV1`` has no emptiness check, unlike the request rule) and
python-alipay-sdk's ``verify()`` keep them. Dropping them (as some PHP ports do) would make a
notify carrying e.g. ``body=`` fail verification against those implementations.

Sorting is by code point; parameter names are ASCII, where that equals Java's String order.
"""
from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

SIGN_TYPE = "RSA2"
# The largest RSA key we accept is far below this; longer input is garbage, not a signature.
_MAX_SIGNATURE_CHARS = 2048
_WHITESPACE = re.compile(r"[\r\n\t ]+")


def sign(private_key: RSAPrivateKey, content: str | bytes, charset: str = "utf-8") -> str:
    """Sign ``content`` (encoded in ``charset`` if text) with RSA2 and return base64."""
    data = content.encode(charset) if isinstance(content, str) else content
    signature = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(
    public_key: RSAPublicKey, content: str | bytes, signature_b64: str, charset: str = "utf-8"
) -> bool:
    """Return whether ``signature_b64`` is a valid RSA2 signature of ``content``; never raises."""
    if not isinstance(signature_b64, str) or len(signature_b64) > _MAX_SIGNATURE_CHARS:
        return False
    try:
        data = content.encode(charset) if isinstance(content, str) else content
        # Alipay's signatures are plain base64; line breaks (some SDKs wrap at 76) are tolerated,
        # any other character outside the alphabet makes the signature invalid.
        signature = base64.b64decode(_WHITESPACE.sub("", signature_b64), validate=True)
    except (binascii.Error, ValueError, LookupError, UnicodeError):
        return False
    if not signature:
        return False
    try:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def request_sign_content(params: Mapping[str, object]) -> str:
    """Build the content a request is signed over: all but ``sign``, no empty values, sorted, ``k=v&...``."""
    items = sorted(
        (key, str(value))
        for key, value in params.items()
        if key != "sign" and value is not None and str(value) != ""
    )
    return "&".join(f"{key}={value}" for key, value in items)


def notify_sign_content(params: Mapping[str, str]) -> str:
    """Build a notify's or return's signed content: all but ``sign``/``sign_type``, sorted, ``k=v&...``."""
    # Sorting the names alone gives the order of sorting the pairs (names are unique), without
    # building a tuple per parameter: this runs on every notify.
    return "&".join(
        [f"{key}={params[key]}" for key in sorted(params) if key != "sign" and key != "sign_type"]
    )
