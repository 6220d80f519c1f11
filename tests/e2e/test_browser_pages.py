"""The pages in a real browser: sign-in, roles, bank-transfer details."""
import re

import pytest

from app.domain.remittance import display
from app.services.accounts import create_account
from app.services.tokens import create_token

pytestmark = pytest.mark.browser


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


@pytest.fixture
def server(serve, sqlite_url):
    return serve(sqlite_url)


@pytest.fixture
def account(server):
    w = server.wallet
    return create_account(w.db, w.clock, name="Browser Co", settlement="guance")


def token(server, role: str, account_id: str | None = None) -> str:
    return create_token(server.wallet.db, server.wallet.clock, role=role, account_id=account_id)


def sign_in(page, server, value: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_test_id("token").fill(value)
    page.get_by_test_id("sign-in").click()


def test_billing_without_a_session_lands_on_the_login_page(server, context):
    page = context.new_page()
    page.goto(server.url + "/billing")
    expect()(page).to_have_url(re.compile(re.escape(server.url) + r"/login(\?.*)?$"))
    expect()(page.get_by_test_id("token")).to_be_visible()


def test_wrong_token_shows_an_error(server, context):
    page = context.new_page()
    sign_in(page, server, "wlt_this-is-not-a-token")
    expect()(page.get_by_test_id("login-error")).to_contain_text("not valid")
    page.goto(server.url + "/billing/")
    expect()(page).to_have_url(re.compile(re.escape(server.url) + r"/login"))


def test_bank_transfer_shows_the_remittance_code(server, context, account):
    page = context.new_page()
    sign_in(page, server, token(server, "account", account.id))
    page.goto(server.url + "/billing/recharge")
    page.get_by_test_id("amount").fill("2000")
    page.get_by_test_id("method-bank-transfer").check()
    page.get_by_test_id("recharge-submit").click()
    expect()(page.get_by_test_id("remittance-code")).to_have_text(display(account.remittance_code))
    expect()(page.get_by_test_id("bank-account-number")).to_have_text(server.wallet.settings.bank_account_number)
    expect()(page.get_by_test_id("transfer-amount")).to_have_text("2000.00")


def test_bad_amount_is_shown_in_the_form(server, context, account):
    page = context.new_page()
    sign_in(page, server, token(server, "account", account.id))
    page.goto(server.url + "/billing/recharge")
    page.get_by_test_id("amount").fill("1e2")
    page.get_by_test_id("recharge-submit").click()
    expect()(page.get_by_test_id("recharge-error")).to_be_visible()
    expect()(page.get_by_test_id("amount")).to_have_value("1e2")


def test_finance_token_sees_the_finance_console(server, context):
    page = context.new_page()
    sign_in(page, server, token(server, "finance"))
    expect()(page).to_have_url(server.url + "/finance/")
    expect()(page.get_by_role("heading", name="Finance console")).to_be_visible()
    expect()(page.get_by_test_id("notify-review-count")).to_have_text("(0)")


def test_account_token_gets_403_on_the_finance_console(server, context, account):
    page = context.new_page()
    sign_in(page, server, token(server, "account", account.id))
    response = page.goto(server.url + "/finance/")
    assert response.status == 403
    expect()(page.get_by_test_id("error-message")).to_be_visible()


def test_sign_out_ends_the_session(server, context, account):
    page = context.new_page()
    sign_in(page, server, token(server, "account", account.id))
    page.get_by_test_id("logout").click()
    expect()(page).to_have_url(re.compile(re.escape(server.url) + r"/login"))
    page.goto(server.url + "/billing/")
    expect()(page).to_have_url(re.compile(re.escape(server.url) + r"/login"))


def test_long_names_and_memos_wrap_inside_the_page(server, context):
    from app.services import ledger
    from app.services.statement_import import import_statement

    w = server.wallet
    account = create_account(w.db, w.clock, name="W" * 200, settlement="guance")
    with w.db.transaction() as session:
        locked = ledger.lock_account(session, account.id)
        ledger.credit_topup(session, locked, amount_fen=12345, key="t:long", kind="topup_bank", now=w.clock.now(),
                            reference="R" * 120, memo="M" * 300)
    header = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"
    line = f"x1,2026-11-26,55.50,CNY,{'N' * 200},{'6' * 60},{'Q' * 300}\n"
    import_statement(w.db, w.clock, data=(header + line).encode(), filename="long.csv", actor="test")
    page = context.new_page()
    sign_in(page, server, token(server, "account", account.id))
    expect()(page.get_by_test_id("cash-balance")).to_have_text("123.45")
    page.wait_for_load_state("load")  # the stylesheet too: a page measured before it overflows
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    box = page.get_by_test_id("recharge-link").bounding_box()
    assert box["x"] + box["width"] <= 1200
    finance = context.browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    sign_in(finance, server, token(server, "finance"))
    expect()(finance.get_by_test_id("statement-lines")).to_contain_text("55.50")
    finance.wait_for_load_state("load")
    assert finance.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finance.context.close()
