"""What the API and the pages answer with beyond their bodies: caching, sniffing, framing, and
which scripts a page may run."""
import re

import pytest
from sqlalchemy import update

from app.adapters.db.models import TopupOrder
from tests.conftest import bearer
from tests.integration.test_pages import csrf_of, sign_in


@pytest.fixture
def account(new_account):
    return new_account("Acme")


def test_api_answers_are_never_stored_or_sniffed(client, admin_token, token_for, account):
    answers = [
        client.get(f"/api/v1/accounts/{account['id']}/wallet", headers=bearer(admin_token)),
        client.get("/api/v1/accounts/<b>x<b>/wallet", headers=bearer(admin_token)),  # a problem quoting the path
        client.post("/api/v1/accounts", json={"name": 1}, headers=bearer(admin_token)),
        client.get(f"/api/v1/accounts/{account['id']}/wallet"),
        client.get(f"/api/v1/accounts/{account['id']}/ledger",
                   headers=bearer(token_for("account", account["id"]))),
    ]
    assert [answer.status_code for answer in answers] == [200, 404, 422, 401, 200]
    for answer in answers:
        assert answer.headers["Cache-Control"] == "no-store", answer.request.path
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.request.path
    for path in ("/api/v1/no/such/thing", "/alipay/notify"):
        assert client.get(path).headers["X-Content-Type-Options"] == "nosniff", path


@pytest.fixture
def checkout(app, token_for, account, alipay_http):
    client = app.test_client()
    sign_in(client, token_for("account", account["id"]))
    form = client.get("/billing/recharge")
    sent = client.post("/billing/recharge", data={"amount": "100.00", "method": "alipay", "csrf_token": csrf_of(form)})
    return client, sent.headers["Location"]


def test_pages_run_only_the_services_own_scripts(app, token_for, account, checkout):
    client, checkout_path = checkout
    for path in ("/billing/", "/billing/recharge", checkout_path, f"{checkout_path}/result"):
        page = client.get(path)
        assert page.status_code == 200, path
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy, path
        # Every script comes from a file, which the policy allows; none is written into the page.
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.get_data(as_text=True)), path
    assert "script-src 'self'" in app.test_client().get("/login").headers["Content-Security-Policy"]


def test_checkout_polls_its_status_from_a_script_file(client, checkout):
    _, checkout_path = checkout
    html = client.get(checkout_path).get_data(as_text=True)
    assert f'data-status-url="{checkout_path}/status"' in html
    assert f'data-result-url="{checkout_path}/result"' in html
    script = client.get("/static/checkout.js")
    assert script.status_code == 200 and b"statusUrl" in script.get_data()


def test_a_qr_code_that_is_no_web_address_is_never_a_link(client, wallet, checkout):
    _, checkout_path = checkout
    assert 'data-testid="qr-link"' in client.get(checkout_path).get_data(as_text=True)
    with wallet.db.transaction() as session:
        session.execute(update(TopupOrder).values(qr_code="javascript:alert(document.cookie)"))
    html = client.get(checkout_path).get_data(as_text=True)
    assert 'data-testid="qr-code"' in html and 'data-testid="qr-link"' not in html
    assert 'href="javascript:' not in html
