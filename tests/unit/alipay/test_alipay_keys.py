from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.adapters.alipay.keys import (
    KeyLoadError,
    generate_keypair,
    load_alipay_public_key,
    load_app_private_key,
    public_key_base64,
)


def _pkcs1_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _body(pem: str) -> str:
    """The base64 between the PEM armour lines, as Alipay's key tool prints keys."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def test_private_key_loads_from_pkcs8_and_pkcs1_pem_text(app_keys):
    assert "BEGIN PRIVATE KEY" in app_keys.private_pem
    pkcs1 = _pkcs1_pem(app_keys.private)
    assert "BEGIN RSA PRIVATE KEY" in pkcs1
    for text in (app_keys.private_pem, pkcs1):
        loaded = load_app_private_key(text)
        assert loaded.private_numbers() == app_keys.private.private_numbers()


def test_private_key_loads_from_a_pem_file_path(app_keys, tmp_path):
    path = tmp_path / "app_private.pem"
    path.write_text(_pkcs1_pem(app_keys.private))
    assert load_app_private_key(str(path)).private_numbers() == app_keys.private.private_numbers()


def test_private_key_loads_from_bare_base64_as_the_key_tool_prints_it(app_keys):
    loaded = load_app_private_key(_body(app_keys.private_pem))
    assert loaded.private_numbers() == app_keys.private.private_numbers()


def test_alipay_public_key_loads_from_pem_bare_base64_and_path(alipay_keys, tmp_path):
    bare = public_key_base64(alipay_keys.public)
    assert bare == _body(alipay_keys.public_pem)
    path = tmp_path / "alipay_public.txt"
    path.write_text(bare + "\n")
    for value in (alipay_keys.public_pem, bare, "  " + bare + "\n", str(path)):
        assert load_alipay_public_key(value).public_numbers() == alipay_keys.public.public_numbers()


def test_alipay_public_key_loads_from_pkcs1_public_pem(alipay_keys):
    pkcs1 = alipay_keys.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()
    assert load_alipay_public_key(pkcs1).public_numbers() == alipay_keys.public.public_numbers()


def test_bad_key_error_never_contains_the_key_material(app_keys):
    body = _body(app_keys.private_pem)
    broken = "-----BEGIN PRIVATE KEY-----\n" + body[:200] + "\n-----END PRIVATE KEY-----\n"
    with pytest.raises(KeyLoadError) as caught:
        load_app_private_key(broken)
    assert body[:40] not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_bad_bare_base64_key_error_never_contains_the_key_material(app_keys):
    body = _body(app_keys.private_pem)[:300]
    with pytest.raises(KeyLoadError) as caught:
        load_app_private_key(body)
    assert body[:40] not in str(caught.value)


def test_private_key_given_as_alipay_public_key_is_refused_without_echo(app_keys):
    with pytest.raises(KeyLoadError) as caught:
        load_alipay_public_key(app_keys.private_pem)
    assert _body(app_keys.private_pem)[:40] not in str(caught.value)


def test_key_load_error_is_a_value_error():
    assert issubclass(KeyLoadError, ValueError)


def test_missing_key_file_is_a_clear_error():
    with pytest.raises(KeyLoadError, match="neither PEM text, bare base64, nor the path"):
        load_app_private_key("/nonexistent/keys/app_private.pem")


def test_empty_key_is_refused():
    with pytest.raises(KeyLoadError, match="empty"):
        load_alipay_public_key("   ")


def test_rsa_keys_shorter_than_2048_bits_are_refused():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyLoadError, match="1024 bits"):
        load_app_private_key(_pkcs1_pem(weak))


def test_non_rsa_keys_are_refused():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(KeyLoadError, match="not an RSA key"):
        load_alipay_public_key(pem)


def test_generate_keypair_returns_matching_pem_strings():
    private_pem, public_pem = generate_keypair()
    private = load_app_private_key(private_pem)
    assert private.key_size == 2048
    assert load_alipay_public_key(public_pem).public_numbers() == private.public_key().public_numbers()
    assert base64.b64decode(_body(public_pem))  # plain base64 body, usable as the console form
