"""Secrets never reach logs: what the suite-wide guard (``log_secrets`` in tests/conftest.py)
knows about, and the logs it does not watch."""
import logging

from sqlalchemy import text

from app.adapters.db import Database
from app.domain.activation_codes import generate_code
from tests.integration.test_pages import sign_in


def test_the_guard_knows_tokens_session_cookies_csrf_tokens_and_the_secret_key(
    log_secrets, client, wallet, token_for, new_account
):
    account = new_account()
    token = token_for("account", account["id"])
    assert sign_in(client, token).status_code == 302
    kinds = {what for value, what in log_secrets.values.items()}
    assert any(value in token for value, what in log_secrets.values.items() if what == "an API token")
    assert wallet.settings.secret_key in log_secrets.values
    assert {"an API token", "a page session id", "a CSRF token", "the session cookie", "SECRET_KEY"} <= kinds


def test_a_secret_in_any_part_of_a_record_is_a_leak(log_secrets):
    code = generate_code()
    logging.getLogger("app.services.coupons").debug("coupon activation refused", extra={"typed": code})
    try:
        raise RuntimeError(f"cannot redeem {code.replace('-', '')}")
    except RuntimeError:
        logging.getLogger("somewhere.else").debug("failed", exc_info=True)
    leaks = log_secrets.leaks()
    log_secrets.lines.clear()  # found: this test is about finding them
    assert len(leaks) == 2 and all(leak.startswith("an activation code") for leak in leaks)


def test_statement_echo_never_prints_bound_values(sqlite_url, caplog, log_secrets):
    # The service's engines hide bound parameters (notify bodies, statement bytes, hashes) from
    # their errors and from the statement echo, should anyone turn it on.
    secret = "wt_" + "s3cret" * 4
    log_secrets.add(secret, "a bound value")
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    db = Database(sqlite_url, echo=True)
    try:
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT :value"), {"value": secret}).scalar() == secret
    finally:
        db.dispose()
    assert "SELECT ?" in caplog.text
    assert "parameters hidden" in caplog.text and secret not in caplog.text
