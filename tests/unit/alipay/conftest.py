"""Alipay adapter fixtures: keypairs generated once per session, and the sandbox wired behind
``responses`` so that the real HTTP client's requests reach it without a network."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from flask import Flask

from app.adapters.alipay.gateway import HttpAlipayGateway
from app.adapters.alipay.keys import generate_keypair, load_alipay_public_key, load_app_private_key
from app.adapters.alipay.sandbox import SandboxState, create_sandbox_blueprint

APP_ID = "2021000000000042"
SELLER_ID = "2088000000000042"
SANDBOX_HOST = "https://sandbox.test"
GATEWAY_URL = SANDBOX_HOST + "/_sandbox/alipay/gateway.do"
NOTIFY_URL = "https://merchant.test/alipay/notify"
RETURN_URL = "https://merchant.test/alipay/return"


@dataclass(frozen=True)
class Keys:
    private: RSAPrivateKey
    public: RSAPublicKey
    private_pem: str
    public_pem: str


def _keys() -> Keys:
    private_pem, public_pem = generate_keypair()
    private, public = load_app_private_key(private_pem), load_alipay_public_key(public_pem)
    return Keys(private, public, private_pem, public_pem)


@pytest.fixture(scope="session")
def app_keys() -> Keys:
    """Our merchant app's keypair."""
    return _keys()


@pytest.fixture(scope="session")
def alipay_keys() -> Keys:
    """The keypair standing for Alipay's (the sandbox signs with it)."""
    return _keys()


@pytest.fixture(scope="session")
def other_keys() -> Keys:
    """A third party's keypair: signatures made with it must never verify."""
    return _keys()


class NotifyReceiver:
    """The merchant's notify endpoint, as seen by the sandbox through ``responses``."""

    def __init__(self):
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.answers: list[tuple[int, str]] = []  # consumed one per request; then "success"

    def __call__(self, request):
        body = request.body if isinstance(request.body, bytes) else request.body.encode("ascii")
        self.bodies.append(body)
        self.content_types.append(request.headers.get("Content-Type", ""))
        status, text = self.answers.pop(0) if self.answers else (200, "success")
        return status, {"Content-Type": "text/plain"}, text


@dataclass
class SandboxRig:
    state: SandboxState
    client: object  # the sandbox app's Flask test client
    http: responses.RequestsMock
    notify: NotifyReceiver
    app_id: str = APP_ID
    host: str = SANDBOX_HOST
    gateway_url: str = GATEWAY_URL
    notify_url: str = NOTIFY_URL
    return_url: str = RETURN_URL

    def open_payer_page(self, qr_code: str):
        """Open the QR code's URL like the payer's phone would: this is the "scan"."""
        return self.client.get(_path(qr_code), base_url=SANDBOX_HOST)

    def pay(self, qr_code: str, **form):
        return self.client.post(_path(qr_code) + "/pay", data=form, base_url=SANDBOX_HOST)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def sandbox(app_keys, alipay_keys) -> SandboxRig:
    """The sandbox mounted in a tiny Flask app, with ``requests`` routed to it by ``responses``."""
    state = SandboxState(
        app_id=APP_ID,
        app_public_key=app_keys.public_pem,
        return_url=RETURN_URL,
        seller_id=SELLER_ID,
        alipay_private_key=alipay_keys.private,
        notify_retry_delay=0,
    )
    app = Flask("alipay-sandbox-test")
    app.register_blueprint(create_sandbox_blueprint(state), url_prefix="/_sandbox/alipay")
    client = app.test_client()

    def forward(request):
        answer = client.open(
            _path(request.url),
            method=request.method,
            data=request.body,
            headers={"Content-Type": request.headers.get("Content-Type", "")},
            base_url=SANDBOX_HOST,
        )
        return answer.status_code, {"Content-Type": answer.content_type}, answer.get_data()

    receiver = NotifyReceiver()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.add_callback(responses.POST, GATEWAY_URL, callback=forward)
        http.add_callback(responses.POST, NOTIFY_URL, callback=receiver)
        yield SandboxRig(state=state, client=client, http=http, notify=receiver)


@pytest.fixture
def gateway(app_keys, alipay_keys, sandbox) -> HttpAlipayGateway:
    """The real HTTP client, configured like production but pointed at the sandbox."""
    return HttpAlipayGateway(APP_ID, app_keys.private_pem, alipay_keys.public_pem, GATEWAY_URL)
