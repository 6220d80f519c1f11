"""A person tops up with Alipay in a real browser: sign in, recharge, scan, pay, see the balance."""
import re

import pytest

from app.services.accounts import create_account
from app.services.tokens import create_token

pytestmark = pytest.mark.browser


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def sign_in(page, server, token: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("sign-in").click()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_alipay_top_up_in_the_browser_grows_the_cash_balance(request, database, serve, context, screenshots):
    server = serve(request.getfixturevalue("sqlite_url" if database == "sqlite" else "pg_url"))
    w = server.wallet
    account = create_account(w.db, w.clock, name="Browser Co", settlement="guance")
    token = create_token(w.db, w.clock, role="account", account_id=account.id)
    page = context.new_page()

    sign_in(page, server, token)
    expect()(page).to_have_url(server.url + "/billing/")
    expect()(page.get_by_test_id("cash-balance")).to_have_text("0.00")

    page.get_by_test_id("recharge-link").click()
    page.get_by_test_id("amount").fill("100.00")
    page.get_by_test_id("method-alipay").check()
    page.get_by_test_id("recharge-submit").click()
    expect()(page).to_have_url(re.compile(re.escape(server.url) + r"/checkout/T\w+$"))
    expect()(page.get_by_test_id("qr-code")).to_be_visible()
    expect()(page.get_by_test_id("topup-status")).to_have_text("pending")
    expect()(page.get_by_test_id("topup-amount")).to_have_text("100.00")
    out_trade_no = page.url.rsplit("/", 1)[1]
    page.screenshot(path=str(screenshots / f"checkout-{database}.png"), full_page=True)

    # "Scanning" the code: open its link, which is the sandbox's payer page, in a new tab.
    with context.expect_page() as opened:
        page.get_by_test_id("qr-link").click()
    phone = opened.value
    expect()(phone.get_by_test_id("sandbox-amount")).to_have_text("100.00 CNY")
    phone.get_by_test_id("sandbox-pay").click()
    expect()(phone).to_have_url(f"{server.url}/checkout/{out_trade_no}/result")
    expect()(phone.get_by_test_id("topup-status")).to_have_text("paid")

    # The checkout tab notices the payment by itself.
    expect()(page.get_by_test_id("topup-status")).to_have_text("paid")

    page.goto(server.url + "/billing/")
    expect()(page.get_by_test_id("cash-balance")).to_have_text("100.00")
    expect()(page.get_by_test_id("ledger")).to_contain_text(out_trade_no)
    page.screenshot(path=str(screenshots / f"wallet-{database}.png"), full_page=True)
