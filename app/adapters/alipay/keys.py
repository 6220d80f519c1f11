"""Load the RSA keys of an Alipay integration: our app private key and Alipay's public key.

Accepted forms, as operators get them from Alipay's key tool and console:

* app private key: PEM text (PKCS#1 ``BEGIN RSA PRIVATE KEY`` or PKCS#8 ``BEGIN PRIVATE KEY``),
  bare base64 of the DER (what the key tool prints), or a path to a file holding either;
* Alipay public key: PEM text, bare base64 (what the console shows), or a path.

Error messages name the form that was expected and, for files, the path; they never repeat
the key text itself, so a misconfigured secret cannot leak into logs or tracebacks.
"""
from __future__ import annotations

import base64
import binascii
import os
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

# RSA2 with Alipay means 2048-bit keys; anything shorter is a mistake or a weak key.
MIN_KEY_BITS = 2048
_MAX_KEY_FILE_BYTES = 64 * 1024
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/=\s]+")


class KeyLoadError(ValueError):
    """A key could not be loaded; the message never contains key material."""


def load_app_private_key(value: str | bytes) -> RSAPrivateKey:
    """Load our app's RSA private key from PEM text, bare base64 DER, or a file path."""
    data, source = _resolve(value, what="app private key")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(_bare_base64(data, source), password=None)
    except KeyLoadError:
        raise
    except (ValueError, TypeError):
        # `from None`: the traceback shows our message only, not the parser's internals.
        raise KeyLoadError(
            f"{source} is not a readable unencrypted RSA private key "
            "(PKCS#1 or PKCS#8 PEM, or base64 DER)"
        ) from None
    return _checked_rsa(key, RSAPrivateKey, source)


def load_alipay_public_key(value: str | bytes) -> RSAPublicKey:
    """Load Alipay's RSA public key from PEM text, bare base64 (console form), or a file path."""
    data, source = _resolve(value, what="Alipay public key")
    try:
        if b"-----BEGIN" in data:
            if b"PRIVATE KEY" in data:
                raise KeyLoadError(f"{source} is a private key; expected Alipay's public key")
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(_bare_base64(data, source))
    except KeyLoadError:
        raise
    except (ValueError, TypeError):
        raise KeyLoadError(
            f"{source} is not a readable RSA public key (PEM or base64 of SubjectPublicKeyInfo)"
        ) from None
    return _checked_rsa(key, RSAPublicKey, source)


def load_public_key(value: str | bytes) -> RSAPublicKey:
    """Load any RSA public key in the forms Alipay's console uses (e.g. our app's public key)."""
    return load_alipay_public_key(value)


def generate_keypair(bits: int = MIN_KEY_BITS) -> tuple[str, str]:
    """Generate an RSA keypair for development, the sandbox and tests: (private PKCS#8 PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return private_key_pem(key), public_key_pem(key.public_key())


def private_key_pem(key: RSAPrivateKey) -> str:
    """Serialise a private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_key_pem(key: RSAPublicKey) -> str:
    """Serialise a public key as SubjectPublicKeyInfo PEM text."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_base64(key: RSAPublicKey) -> str:
    """Serialise a public key as bare base64 DER, the form Alipay's console shows and accepts."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def _resolve(value: str | bytes, *, what: str) -> tuple[bytes, str]:
    """Return the key bytes and a description of where they came from (never the key)."""
    if isinstance(value, bytes):
        text = value.decode("ascii", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        raise KeyLoadError(f"{what} must be a string (PEM, base64 or a path)")
    stripped = text.strip()
    if not stripped:
        raise KeyLoadError(f"{what} is empty")
    if "-----BEGIN" in stripped:
        return stripped.encode("ascii", errors="replace"), f"the {what} PEM text"
    # A path is tried before bare base64: a relative file name can be valid base64 as well.
    if len(stripped) < 4096 and os.path.isfile(stripped):
        try:
            with open(stripped, "rb") as handle:
                data = handle.read(_MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise KeyLoadError(f"{what} file {stripped!r} cannot be read: {exc.strerror}") from None
        if len(data) > _MAX_KEY_FILE_BYTES:
            raise KeyLoadError(f"{what} file {stripped!r} is too large to be a key")
        return data.strip(), f"the {what} file {stripped!r}"
    if _BASE64_BODY.fullmatch(stripped) and len(stripped) >= 64:
        return stripped.encode("ascii"), f"the {what} base64 text"
    raise KeyLoadError(
        f"{what} is neither PEM text, bare base64, nor the path of an existing file"
    )


def _bare_base64(data: bytes, source: str) -> bytes:
    compact = re.sub(rb"\s+", b"", data)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"{source} is not valid base64") from None


def _checked_rsa(key, expected_type, source: str):
    if not isinstance(key, expected_type):
        raise KeyLoadError(f"{source} is not an RSA key of the expected kind")
    if key.key_size < MIN_KEY_BITS:
        raise KeyLoadError(f"{source} is {key.key_size} bits; RSA2 needs at least {MIN_KEY_BITS}")
    return key
