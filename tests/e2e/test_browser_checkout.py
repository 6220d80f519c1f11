"""The checkout page in a real browser: its QR code on a phone and a desktop, its status when the
order expires or the connection drops, without JavaScript, and the contrast of its text."""
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.adapters.db.models import TopupOrder
from app.services import topups
from app.services.accounts import create_account

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


@pytest.fixture
def server(serve, sqlite_url):
    return serve(sqlite_url)


def new_order(server, amount_fen: int = 10000, expires_in: timedelta | None = None):
    w = server.wallet
    account = create_account(w.db, w.clock, name="Checkout Co", settlement="guance")
    order = topups.create_topup(w.db, w.clock, w.gateway, w.settings, account_id=account.id, amount_fen=amount_fen)
    if expires_in is not None:
        with w.db.transaction() as session:
            session.execute(
                update(TopupOrder)
                .where(TopupOrder.out_trade_no == order.out_trade_no)
                .values(expires_at=w.clock.now() + expires_in)
            )
    return order.out_trade_no


def status_requests(page, out_trade_no: str) -> list[float]:
    """Record when the page asks for the order's status."""
    times = []
    page.on("request", lambda r: r.url.endswith(f"/checkout/{out_trade_no}/status") and times.append(time.monotonic()))
    return times


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_qr_code_is_large_whole_and_named_with_the_amount_and_order(server, browser, viewport, screenshots):
    out_trade_no = new_order(server, 8880)
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    page.wait_for_load_state("load")
    qr = page.get_by_role("img", name=f"Alipay QR code to pay 88.80 CNY for order {out_trade_no}")
    expect()(qr).to_be_visible()
    svg = page.get_by_test_id("qr-code").locator("svg").bounding_box()
    # Square, at least 200 CSS pixels (a phone scans it from a screen at arm's length), on screen.
    assert svg["width"] >= 200 and abs(svg["width"] - svg["height"]) < 1
    assert svg["x"] >= 0 and svg["x"] + svg["width"] <= viewport["width"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect()(page.get_by_test_id("topup-amount")).to_have_text("88.80")
    expect()(page.locator("p.amount")).to_have_text("88.80 CNY")
    expect()(page.get_by_test_id("order-number")).to_have_text(out_trade_no)
    expect()(page.get_by_test_id("expires-at")).to_contain_text("Beijing time")
    expect()(page.get_by_test_id("time-left")).to_have_text(
        re.compile(r"^1[45]:\d\d$"))
    page.screenshot(path=str(screenshots / f"checkout-{viewport['width']}.png"), full_page=True)
    context.close()


def test_at_the_expiry_the_page_says_so_hides_the_code_and_stops_asking(server, context):
    out_trade_no = new_order(server, expires_in=timedelta(seconds=4))
    page = context.new_page()
    asked = status_requests(page, out_trade_no)
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    expect()(page.get_by_test_id("topup-status")).to_have_text("expired", timeout=20_000)
    expect()(page.get_by_test_id("note-expired")).to_be_visible()
    expect()(page.get_by_test_id("qr-code")).to_be_hidden()
    expect()(page.get_by_test_id("time-left")).to_be_hidden()
    count = len(asked)
    page.wait_for_timeout(5000)
    assert len(asked) == count


def test_a_lost_connection_is_said_retried_less_often_and_recovered_from(server, context):
    out_trade_no = new_order(server)
    page = context.new_page()
    asked = status_requests(page, out_trade_no)
    page.route(f"**/checkout/{out_trade_no}/status", lambda route: route.abort("internetdisconnected"))
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    expect()(page.get_by_test_id("note-offline")).to_be_visible()
    page.wait_for_timeout(12_000)
    gaps = [b - a for a, b in zip(asked, asked[1:])]
    assert len(gaps) >= 2 and gaps[-1] > gaps[0] * 1.5, gaps  # backing off, not hammering
    expect()(page.get_by_test_id("topup-status")).to_have_text("pending")
    page.unroute(f"**/checkout/{out_trade_no}/status")
    expect()(page.get_by_test_id("note-offline")).to_be_hidden(timeout=30_000)
    expect()(page.get_by_test_id("topup-status")).to_have_text("pending")
    expect()(page.get_by_test_id("qr-code")).to_be_visible()


def test_offline_at_the_expiry_the_page_stops_asking(server, context):
    out_trade_no = new_order(server, expires_in=timedelta(seconds=4))
    page = context.new_page()
    asked = status_requests(page, out_trade_no)
    page.route(f"**/checkout/{out_trade_no}/status", lambda route: route.abort("internetdisconnected"))
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    expect()(page.get_by_test_id("topup-status")).to_have_text("expired", timeout=20_000)
    expect()(page.get_by_test_id("qr-code")).to_be_hidden()
    expect()(page.get_by_test_id("check-status")).to_be_visible()
    count = len(asked)
    page.wait_for_timeout(6000)
    assert len(asked) == count


def test_without_javascript_the_customer_can_pay_and_see_the_result(server, browser):
    out_trade_no = new_order(server, 4200)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    expect()(page.get_by_test_id("qr-code")).to_be_visible()
    expect()(page.get_by_test_id("time-left")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    phone = context.new_page()
    phone.goto(page.get_by_test_id("qr-link").get_attribute("href"))
    phone.get_by_test_id("sandbox-pay").click()
    page.get_by_test_id("check-status").click()
    expect()(page.get_by_test_id("topup-status")).to_have_text("paid")
    expect()(page.get_by_test_id("result-amount")).to_have_text("42.00")
    expect()(page.get_by_test_id("paid-at")).to_contain_text("Beijing time")
    context.close()


CONTRAST = """
(selector) => {
  function rgb(text) { return text.match(/[\\d.]+/g).map(Number); }
  function luminance(c) {
    const [r, g, b] = c.slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }
  function background(el) {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  }
  return [...document.querySelectorAll(selector)].filter(el => el.offsetParent !== null).map(el => {
    const a = luminance(rgb(getComputedStyle(el).color)), b = luminance(background(el));
    return [el.textContent.trim().slice(0, 40), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}
"""


def test_status_and_secondary_text_reach_the_contrast_of_normal_text(server, context):
    out_trade_no = new_order(server)
    page = context.new_page()
    page.goto(f"{server.url}/checkout/{out_trade_no}")
    page.wait_for_load_state("load")
    measured = page.evaluate(CONTRAST, ".muted, [data-testid=topup-status], p, a")
    page.goto(f"{server.url}/checkout/{out_trade_no}/result")
    page.wait_for_load_state("load")
    measured += page.evaluate(CONTRAST, ".muted, [data-testid=topup-status], p, a")
    assert measured and all(ratio >= 4.5 for _, ratio in measured), [m for m in measured if m[1] < 4.5]
