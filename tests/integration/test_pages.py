"""The server-rendered pages: sign-in, the wallet, recharging, the finance console."""
import re
from datetime import timedelta

import pytest
import requests
import responses
from sqlalchemy import update

from app.adapters.db.models import ApiToken
from app.domain.remittance import display
from app.services import ledger
from tests.integration.test_topups import paid_notify, post_notify

GATEWAY = "http://wallet.test/_sandbox/alipay/gateway.do"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response) -> str:
    return CSRF.search(response.get_data(as_text=True)).group(1)


def sign_in(client, token: str):
    form = client.get("/login")
    return client.post("/login", data={"token": token, "csrf_token": csrf_of(form)})


def by_testid(response, name: str) -> str:
    match = re.search(rf'data-testid="{name}"[^>]*>([^<]*)<', response.get_data(as_text=True))
    assert match, f"no {name} in the page"
    return match.group(1)


@pytest.fixture
def account(new_account):
    return new_account("Acme")


@pytest.fixture
def account_client(app, token_for, account):
    client = app.test_client()
    assert sign_in(client, token_for("account", account["id"])).headers["Location"] == "/billing/"
    return client


def test_pages_without_a_session_redirect_to_login(client):
    for path in ("/billing/", "/billing/recharge", "/billing/bank-transfer", "/finance/", "/billing/no-such-page"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    assert client.get("/billing").status_code in (301, 308)


def test_login_with_a_wrong_token_shows_the_form_again(client):
    response = sign_in(client, "wlt_not-a-real-token")
    assert response.status_code == 401
    assert "not valid" in by_testid(response, "login-error")
    assert client.get("/billing/").status_code == 302


def test_posts_without_the_csrf_token_are_refused(client, account_client, token_for, account):
    assert client.post("/login", data={"token": token_for("account", account["id"])}).status_code == 400
    refused = account_client.post("/billing/recharge", data={"amount": "1.00", "method": "alipay", "csrf_token": "x"})
    assert refused.status_code == 400
    assert account_client.post("/logout").status_code == 400


def test_session_cookie_never_holds_the_token(app, token_for, account):
    client = app.test_client()
    token = token_for("account", account["id"])
    response = sign_in(client, token)
    cookie = response.headers["Set-Cookie"]
    assert token not in cookie and token[4:20] not in cookie
    with client.session_transaction() as session:
        assert set(session) == {"sid", "token_id", "role", "account_id", "csrf"}


def test_requests_without_a_cookie_skip_the_session_signer_and_pages_keep_their_sessions(
    app, token_for, account, monkeypatch
):
    from app.web.page_session import CookieSessions

    built = []
    original = CookieSessions.get_signing_serializer
    monkeypatch.setattr(
        CookieSessions, "get_signing_serializer", lambda self, a: built.append(1) or original(self, a)
    )
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/accounts/x", headers={"Authorization": "Bearer wlt_nope"}).status_code == 401
    assert not built  # no cookie, nothing to verify or write
    sign_in(client, token_for("account", account["id"]))
    assert built  # the login wrote the session cookie
    page = client.get("/billing/")
    assert page.status_code == 200  # and the next request read it back
    with client.session_transaction() as session:
        assert session["account_id"] == account["id"]


def test_account_sees_its_wallet_with_cash_and_remittance_code(account_client, wallet, account):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.credit_topup(session, acc, amount_fen=12345, key="t:1", kind="topup_alipay",
                            now=wallet.clock.now(), reference="T1", memo="")
    page = account_client.get("/billing/")
    assert page.status_code == 200
    assert by_testid(page, "cash-balance") == "123.45"
    assert display(account["remittance_code"]) in page.get_data(as_text=True)
    assert "Alipay top-up" in page.get_data(as_text=True)


def test_arrears_show_as_a_negative_balance(account_client, wallet, account):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill:x", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 3000)])
    page = account_client.get("/billing/")
    assert by_testid(page, "cash-balance") == "-30.00"
    assert "30.00" in by_testid(page, "arrears")


def test_coupons_and_cards_are_listed(account_client, wallet, account):
    from app.services.coupons import allocate_coupon
    from app.services.prepaid_cards import allocate_prepaid_card

    now = wallet.clock.now()
    allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=5000,
                    valid_from=now, expires_at=now + timedelta(days=30), actor="test")
    allocate_prepaid_card(wallet.db, wallet.clock, account_id=account["id"], amount_fen=10000,
                          expires_at=now + timedelta(days=365), actor="test")
    page = account_client.get("/billing/")
    assert by_testid(page, "regular-coupons") == "50.00"
    assert by_testid(page, "prepaid-cards") == "100.00"
    html = page.get_data(as_text=True)
    assert 'data-testid="coupons"' in html and 'data-testid="prepaid-card-list"' in html


@pytest.mark.parametrize("amount", ["1e2", "-5.00", "0.00", "100.001", " 100", "", "NaN", "200000000.00"])
def test_bad_recharge_amounts_show_the_error_in_the_form(account_client, amount):
    form = account_client.get("/billing/recharge")
    response = account_client.post(
        "/billing/recharge", data={"amount": amount, "method": "alipay", "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 422
    assert by_testid(response, "recharge-error")


def test_unknown_method_is_refused_in_the_form(account_client):
    form = account_client.get("/billing/recharge")
    response = account_client.post(
        "/billing/recharge", data={"amount": "1.00", "method": "bitcoin", "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 422 and by_testid(response, "recharge-error")


def test_alipay_recharge_leads_to_the_checkout_page(account_client, alipay_http):
    form = account_client.get("/billing/recharge")
    response = account_client.post(
        "/billing/recharge", data={"amount": "100.00", "method": "alipay", "csrf_token": csrf_of(form)}
    )
    assert response.status_code == 302
    assert re.fullmatch(r"/checkout/T\w+", response.headers["Location"])
    checkout = account_client.get(response.headers["Location"])
    assert by_testid(checkout, "topup-status") == "pending"
    assert 'data-testid="qr-code"' in checkout.get_data(as_text=True)


@pytest.mark.parametrize(
    "answer",
    [requests.exceptions.ConnectionError("down"), requests.exceptions.ReadTimeout("slow")],
)
def test_gateway_failure_shows_a_friendly_error(account_client, answer):
    form = account_client.get("/billing/recharge")
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=answer)
        response = account_client.post(
            "/billing/recharge", data={"amount": "100.00", "method": "alipay", "csrf_token": csrf_of(form)}
        )
    assert response.status_code == 502
    assert "Alipay cannot be reached" in by_testid(response, "recharge-error")


def test_gateway_refusal_shows_a_friendly_error(account_client, sandbox):
    from tests.integration.test_topup_failures import signed_response

    body = signed_response(sandbox, {"code": "40004", "msg": "Business Failed",
                                     "sub_code": "ACQ.TOTAL_FEE_EXCEED", "sub_msg": "limit"})
    form = account_client.get("/billing/recharge")
    with responses.RequestsMock() as mock:
        mock.add("POST", GATEWAY, body=body)
        response = account_client.post(
            "/billing/recharge", data={"amount": "100.00", "method": "alipay", "csrf_token": csrf_of(form)}
        )
    assert response.status_code == 502
    assert "declined" in by_testid(response, "recharge-error")


def test_bank_transfer_shows_the_account_and_the_remittance_code(account_client, wallet, account):
    form = account_client.get("/billing/recharge")
    response = account_client.post(
        "/billing/recharge", data={"amount": "500", "method": "bank_transfer", "csrf_token": csrf_of(form)}
    )
    page = account_client.get(response.headers["Location"])
    assert by_testid(page, "remittance-code") == display(account["remittance_code"])
    assert by_testid(page, "bank-account-number") == wallet.settings.bank_account_number
    assert by_testid(page, "transfer-amount") == "500.00"
    assert "memo" in page.get_data(as_text=True)


def test_finance_sees_notifies_needing_review_newest_first(app, client, wallet, token_for, account, alipay_http, sandbox):
    account_token = token_for("account", account["id"])
    from tests.integration.test_topups import create_topup

    order = create_topup(client, account, account_token)
    post_notify(client, paid_notify(wallet, sandbox, order, total_amount="99.99"))
    wallet.clock.advance(minutes=1)
    post_notify(client, paid_notify(wallet, sandbox, order, app_id="2099000000000000"))
    finance = app.test_client()
    assert sign_in(finance, token_for("finance")).headers["Location"] == "/finance/"
    html = finance.get("/finance/").get_data(as_text=True)
    assert html.index("rejected_app_id") < html.index("rejected_amount")
    assert order["out_trade_no"] in html


def test_account_token_gets_403_on_the_finance_console(account_client):
    response = account_client.get("/finance/")
    assert response.status_code == 403


def test_finance_and_admin_are_sent_from_billing_to_their_console(app, token_for, admin_token):
    for token in (token_for("finance"), admin_token):
        client = app.test_client()
        sign_in(client, token)
        assert client.get("/billing/").headers["Location"] == "/finance/"
        assert client.get("/finance/").status_code == 200


def test_login_returns_to_the_page_asked_for_but_never_elsewhere(app, token_for, account):
    token = token_for("account", account["id"])
    for target, expected in (("/billing/recharge", "/billing/recharge"), ("//evil.example/billing/", "/billing/"),
                             ("https://evil.example/", "/billing/"), ("/finance/", "/billing/")):
        client = app.test_client()
        form = client.get("/login", query_string={"next": target})
        response = client.post("/login", data={"token": token, "next": target, "csrf_token": csrf_of(form)})
        assert response.headers["Location"] == expected, target


def test_revoking_the_token_ends_its_page_sessions(account_client, wallet):
    assert account_client.get("/billing/").status_code == 200
    with wallet.db.transaction() as session:
        session.execute(update(ApiToken).values(revoked_at=wallet.clock.now()))
    assert account_client.get("/billing/").headers["Location"].startswith("/login")


def test_logout_ends_the_session(account_client):
    page = account_client.get("/billing/")
    assert account_client.post("/logout", data={"csrf_token": csrf_of(page)}).headers["Location"] == "/login"
    assert account_client.get("/billing/").status_code == 302


def test_finance_console_lists_statement_lines_by_status(app, wallet, token_for, account):
    from app.services.statement_import import import_statement

    header = "transaction_id,booked_at,amount,currency,counterparty_name,counterparty_account,memo\n"
    data = (header + f"a1,2026-11-26,100.00,CNY,Payer,622201,{account['remittance_code']}\n"
            + "a2,2026-11-26,55.50,CNY,Stranger,622299,no code here\n").encode()
    import_statement(wallet.db, wallet.clock, data=data, filename="s.csv", actor="test")
    finance = app.test_client()
    sign_in(finance, token_for("finance"))
    unmatched = finance.get("/finance/").get_data(as_text=True)
    assert "55.50" in unmatched and "no code here" in unmatched and "Payer" not in unmatched
    matched = finance.get("/finance/?status=matched").get_data(as_text=True)
    assert account["id"] in matched and "Stranger" not in matched
    assert finance.get("/finance/?status=bogus&after=x").status_code == 200
    # "²" passes str.isdigit() but is no number int() reads.
    assert finance.get("/finance/?after=%C2%B2").status_code == 200


def test_checkout_and_result_pages_are_never_framed_cached_or_sniffed(client, account_client, alipay_http):
    form = account_client.get("/billing/recharge")
    response = account_client.post(
        "/billing/recharge", data={"amount": "100.00", "method": "alipay", "csrf_token": csrf_of(form)}
    )
    checkout = response.headers["Location"]
    for path in (checkout, f"{checkout}/status", f"{checkout}/result", "/checkout/result"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["X-Frame-Options"] == "DENY", path
        assert page.headers["X-Content-Type-Options"] == "nosniff", path
        assert page.headers["Cache-Control"] == "no-store", path


def issue_code(wallet, amount_fen: int = 5000, days: int = 30) -> str:
    from app.services.coupons import issue_codes

    now = wallet.clock.now()
    return issue_codes(wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, count=1,
                       face_value_fen=amount_fen, valid_from=now, expires_at=now + timedelta(days=days),
                       actor="test")[0]


def activate(account_client, code: str):
    form = account_client.get("/billing/coupons/activate")
    assert form.status_code == 200
    return account_client.post("/billing/coupons/activate", data={"code": code, "csrf_token": csrf_of(form)})


def test_coupon_code_is_activated_from_the_page(account_client, wallet):
    assert 'href="/billing/coupons/activate"' in account_client.get("/billing/").get_data(as_text=True)
    response = activate(account_client, issue_code(wallet, 5000))
    assert response.status_code == 302 and response.headers["Location"] == "/billing/"
    page = account_client.get("/billing/")
    assert by_testid(page, "regular-coupons") == "50.00"
    assert "50.00" in page.get_data(as_text=True).split('data-testid="coupons"')[1]


@pytest.mark.parametrize("case, status, words", [
    ("empty", 422, "Enter"), ("unknown", 422, "unknown"),
    # Sent twice: the coupon is there, and the page says so.
    ("used", 422, "already been activated for this account; its coupon is in the wallet"),
])
def test_bad_coupon_codes_show_a_clear_error(account_client, wallet, case, status, words):
    code = {"empty": "", "unknown": "NOPE-NOPE-NOPE", "used": None}[case]
    if case == "used":
        code = issue_code(wallet)
        assert activate(account_client, code).status_code == 302
    response = activate(account_client, code)
    assert response.status_code == status
    assert words in by_testid(response, "activate-error")
    assert by_testid(account_client.get("/billing/"), "regular-coupons") == ("50.00" if case == "used" else "0.00")


def test_too_many_wrong_codes_are_refused_in_the_form(account_client):
    for _ in range(10):
        assert activate(account_client, "WRONG-CODE").status_code == 422
    response = activate(account_client, "WRONG-CODE")
    assert response.status_code == 429
    assert "too many" in by_testid(response, "activate-error").lower()


def test_coupon_form_needs_the_csrf_token(account_client):
    assert account_client.post("/billing/coupons/activate", data={"code": "X"}).status_code == 400


def fund(wallet, account, amount_fen: int) -> None:
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.credit_topup(session, acc, amount_fen=amount_fen, key=f"t:{amount_fen}", kind="topup_alipay",
                            now=wallet.clock.now(), reference="T1", memo="")


def test_prepaid_card_is_bought_from_the_page_once_per_form(account_client, wallet, account):
    fund(wallet, account, 2_000_000)
    assert 'href="/billing/prepaid-cards/buy"' in account_client.get("/billing/").get_data(as_text=True)
    form = account_client.get("/billing/prepaid-cards/buy")
    assert form.status_code == 200
    data = {"amount": "10000", "csrf_token": csrf_of(form),
            "request_id": re.search(r'name="request_id" value="([^"]+)"', form.get_data(as_text=True)).group(1)}
    response = account_client.post("/billing/prepaid-cards/buy", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/billing/"
    # The same form sent again (a double click, a retry) buys nothing more.
    assert account_client.post("/billing/prepaid-cards/buy", data=data).status_code == 302
    page = account_client.get("/billing/")
    assert by_testid(page, "prepaid-cards") == "10000.00"
    assert by_testid(page, "discount-coupons") == "1000.00"
    assert by_testid(page, "cash-balance") == "10000.00"
    assert by_testid(page, "invoiceable") == "10000.00"


@pytest.mark.parametrize("amount, status, words", [
    ("150.00", 422, "multiple of 100"), ("1e2", 422, "not an amount"), ("", 422, "amount"),
    ("300.00", 409, "too low"),
])
def test_bad_card_purchases_show_the_error_in_the_form(account_client, wallet, account, amount, status, words):
    fund(wallet, account, 20000)
    form = account_client.get("/billing/prepaid-cards/buy")
    response = account_client.post("/billing/prepaid-cards/buy", data={"amount": amount, "csrf_token": csrf_of(form)})
    assert response.status_code == status
    assert words in by_testid(response, "buy-card-error")
    page = account_client.get("/billing/")
    assert by_testid(page, "cash-balance") == "200.00" and by_testid(page, "prepaid-cards") == "0.00"


def test_card_form_needs_the_csrf_token(account_client, wallet, account):
    fund(wallet, account, 20000)
    assert account_client.post("/billing/prepaid-cards/buy", data={"amount": "100.00"}).status_code == 400
    assert by_testid(account_client.get("/billing/"), "cash-balance") == "200.00"


def test_older_transactions_can_be_paged_through(account_client, wallet, account):
    for n in range(25):
        with wallet.db.transaction() as session:
            acc = ledger.lock_account(session, account["id"])
            ledger.credit_topup(session, acc, amount_fen=100 + n, key=f"t:{n}", kind="topup_alipay",
                                now=wallet.clock.now(), reference=f"T{n:02d}", memo="")
    page = account_client.get("/billing/").get_data(as_text=True)
    assert "T24" in page and "T05" in page and "T04" not in page
    older = re.search(r'href="(/billing/\?before=\d+)[^"]*"[^>]*data-testid="older-entries"', page)
    assert older, "no link to older entries"
    rest = account_client.get(older.group(1)).get_data(as_text=True)
    assert all(f"T{n:02d}" in rest for n in range(5)) and "T05" not in rest
    assert 'data-testid="older-entries"' not in rest
    for bad in ("x", "-1", "%C2%B2", "9" * 30):
        assert account_client.get(f"/billing/?before={bad}").status_code == 200


def ledger_rows(page) -> list[list[str]]:
    table = page.get_data(as_text=True).split('data-testid="ledger"')[1].split("</table>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "<td" in row]


def test_arrears_in_the_activity_show_as_a_negative_balance(account_client, wallet, account):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill:x", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 3000)])
    fund(wallet, account, 5000)  # pays the 30.00 overdue first, 20.00 becomes cash
    rows = ledger_rows(account_client.get("/billing/"))
    arrears = [(row[1], row[3], row[4]) for row in rows if row[2] == "Arrears"]
    assert arrears == [("Alipay top-up", "30.00", "0.00"), ("Bill", "-30.00", "-30.00")]


@pytest.mark.parametrize("settlement, general, sms", [
    ("guance", "Regular coupons, discount coupons, prepaid cards, cash, negative balance",
     "prepaid cards, cash, negative balance"),
    ("cloud", "Regular coupons, discount coupons, prepaid cards, cloud account", "prepaid cards, cloud account"),
])
def test_wallet_shows_the_deduction_order_of_the_accounts_settlement(app, token_for, new_account, settlement,
                                                                    general, sms):
    account = new_account("Cloudy", settlement=settlement)
    client = app.test_client()
    sign_in(client, token_for("account", account["id"]))
    page = client.get("/billing/")
    assert by_testid(page, "deduction-order-general") == general
    assert by_testid(page, "deduction-order-sms") == sms


def table_rows(page, testid: str) -> list[list[str]]:
    table = page.get_data(as_text=True).split(f'data-testid="{testid}"')[1].split("</table>")[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S) if "<td" in row]


def settle(client, admin_token, account, bill_id: str, amount: str, product: str = "general"):
    from tests.conftest import bearer

    workspace = f"ws-{account['id']}"
    client.post(f"/api/v1/accounts/{account['id']}/workspaces", json={"workspace_id": workspace},
                headers=bearer(admin_token))
    response = client.post("/api/v1/bills", json={"bill_id": bill_id, "workspace_id": workspace,
                                                  "product": product, "amount": amount}, headers=bearer(admin_token))
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


def test_activated_coupon_shows_face_value_balance_status_validity_and_activation_time(
    client, admin_token, account_client, wallet, account
):
    code = issue_code(wallet, 5000, days=30)  # valid from 12:00 on 26 November, Beijing time
    wallet.clock.advance(minutes=5)
    assert activate(account_client, code).status_code == 302
    settle(client, admin_token, account, "B-1", "30.00")
    page = account_client.get("/billing/")
    [row] = table_rows(page, "coupons")
    assert row[1:] == ["regular", "50.00", "20.00", "active", "2026-11-26 12:00 – 2026-12-26 12:00",
                       "2026-11-26 12:05"]
    assert by_testid(page, "regular-coupons") == "20.00"


def test_expired_coupon_is_listed_as_expired_and_no_longer_counts(app, token_for, wallet, account):
    from app.services.coupons import allocate_coupon

    now = wallet.clock.now()
    allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=5000,
                    valid_from=now, expires_at=now + timedelta(days=1), actor="test")
    allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=1234,
                    valid_from=now, expires_at=now + timedelta(days=30), actor="test")
    wallet.clock.advance(days=1)  # the first coupon's window ends at this instant
    account_client = app.test_client()  # signed in now: a session lasts 12 hours
    sign_in(account_client, token_for("account", account["id"]))
    page = account_client.get("/billing/")
    assert [(row[2], row[3], row[4]) for row in table_rows(page, "coupons")] == [
        ("50.00", "50.00", "expired"), ("12.34", "12.34", "active")]
    assert by_testid(page, "regular-coupons") == "12.34"


def test_bought_card_shows_number_face_value_balance_status_and_validity(
    client, admin_token, account_client, wallet, account
):
    fund(wallet, account, 50000)
    form = account_client.get("/billing/prepaid-cards/buy")
    assert account_client.post("/billing/prepaid-cards/buy",
                               data={"amount": "300", "csrf_token": csrf_of(form)}).status_code == 302
    settle(client, admin_token, account, "S-1", "0.45", product="sms")
    page = account_client.get("/billing/")
    [row] = table_rows(page, "prepaid-card-list")
    assert row[1:4] == ["300.00", "299.55", "active"]
    assert row[0].isdigit()
    # Bought at 12:00 on 26 November (Beijing time), valid for a year.
    assert re.fullmatch(r"2026-11-26 12:00 – 2027-11-2\d \d\d:\d\d", row[4])
    assert by_testid(page, "prepaid-cards") == "299.55"
    assert by_testid(page, "cash-balance") == "200.00"


def test_a_new_wallet_shows_zero_figures_and_empty_lists(account_client):
    page = account_client.get("/billing/")
    for figure in ("cash-balance", "regular-coupons", "discount-coupons", "prepaid-cards", "invoiceable"):
        assert by_testid(page, figure) == "0.00", figure
    html = page.get_data(as_text=True)
    assert 'data-testid="arrears"' not in html
    assert "No coupons yet." in html and "No prepaid cards yet." in html and "No activity yet." in html
    assert 'data-testid="older-entries"' not in html and 'data-testid="newest-entries"' not in html


def test_chinese_and_markup_in_names_and_memos_are_shown_as_text(app, token_for, new_account, wallet):
    account = new_account("观测云 <script>alert(1)</script>")
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.credit_topup(session, acc, amount_fen=8850, key="t:zh", kind="topup_bank",
                            now=wallet.clock.now(), reference="流水-1", memo="货款 <b>备注</b>")
    client = app.test_client()
    sign_in(client, token_for("account", account["id"]))
    page = client.get("/billing/")
    html = page.get_data(as_text=True)
    assert "<script>alert" not in html and "<b>备注" not in html
    assert "观测云 &lt;script&gt;alert(1)&lt;/script&gt;" in html
    [row] = ledger_rows(page)
    assert row[1:] == ["Bank transfer", "Cash", "88.50", "88.50", "流水-1 货款 &lt;b&gt;备注&lt;/b&gt;"]


def test_bank_transfer_page_names_the_bank_and_the_account_holder(account_client, wallet, account):
    page = account_client.get("/billing/bank-transfer")
    assert by_testid(page, "bank-name") == wallet.settings.bank_name
    assert by_testid(page, "bank-account-name") == wallet.settings.bank_account_name
    assert by_testid(page, "remittance-code") == display(account["remittance_code"])
    assert 'data-testid="transfer-amount"' not in page.get_data(as_text=True)


def test_card_form_shows_the_cash_the_discount_tiers_and_that_cards_are_final(account_client, wallet, account):
    fund(wallet, account, 123456)
    page = account_client.get("/billing/prepaid-cards/buy")
    assert by_testid(page, "buy-card-cash") == "1234.56"
    text = re.sub(r"\s+", " ", page.get_data(as_text=True))
    assert ("from 10000.00 CNY a 1000.00 CNY coupon; from 30000.00 CNY a 5000.00 CNY coupon; "
            "from 100000.00 CNY a 20000.00 CNY coupon.") in text
    assert "cannot be cancelled, refunded, transferred or redeemed for cash" in text


def recharge_by_alipay(account_client, amount: str) -> str:
    form = account_client.get("/billing/recharge")
    response = account_client.post("/billing/recharge",
                                   data={"amount": amount, "method": "alipay", "csrf_token": csrf_of(form)})
    assert response.status_code == 302
    return response.headers["Location"]


def test_going_back_to_the_checkout_after_paying_shows_it_paid_and_credits_once(account_client, alipay_http):
    from urllib.parse import urlsplit

    from tests.integration.test_topups import scan_and_pay

    checkout = recharge_by_alipay(account_client, "88.80")
    qr_code = re.search(r'data-qr="([^"]+)"', account_client.get(checkout).get_data(as_text=True)).group(1)
    paid = urlsplit(scan_and_pay(account_client, qr_code).headers["Location"])
    result = account_client.get(account_client.get(f"{paid.path}?{paid.query}").headers["Location"])
    assert by_testid(result, "topup-status") == "paid"
    assert "88.80</span> CNY was added to your wallet." in result.get_data(as_text=True)
    assert "Beijing time" in by_testid(result, "paid-at")
    for _ in range(2):  # the back button, then a reload, on the checkout and the result page
        again = account_client.get(checkout)
        assert by_testid(again, "topup-status") == "paid" and by_testid(again, "topup-amount") == "88.80"
        assert 'data-testid="qr-code"' not in again.get_data(as_text=True)
        assert 'id="time-left"' not in again.get_data(as_text=True)
        assert 'data-testid="note-paid">' in again.get_data(as_text=True)  # shown, not hidden
        assert by_testid(account_client.get(f"{checkout}/result"), "topup-status") == "paid"
        assert account_client.get(f"{checkout}/status").get_json() == {"status": "paid", "paid": True}
    assert by_testid(account_client.get("/billing/"), "cash-balance") == "88.80"


def test_an_expired_checkout_hides_its_qr_code_and_credits_nothing(account_client, wallet, alipay_http):
    checkout = recharge_by_alipay(account_client, "20.00")
    wallet.clock.advance(minutes=16)
    page = account_client.get(checkout)
    assert by_testid(page, "topup-status") in ("expired", "closed")
    assert 'data-testid="qr-code"' not in page.get_data(as_text=True)
    result = account_client.get(f"{checkout}/result")
    assert by_testid(result, "topup-status") in ("expired", "closed")
    html = result.get_data(as_text=True)
    assert "Waiting for confirmation" not in html and "can no longer be paid" in html
    assert 'href="/billing/recharge"' in html
    html = page.get_data(as_text=True)
    assert 'data-testid="note-expired">' in html and 'href="/billing/recharge"' in html
    assert by_testid(account_client.get("/billing/"), "cash-balance") == "0.00"


def test_each_bill_is_listed_with_how_it_was_paid(client, admin_token, account_client, wallet, account):
    from app.services.coupons import allocate_coupon

    now = wallet.clock.now()
    allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=5000,
                    valid_from=now, expires_at=now + timedelta(days=30), actor="test")
    fund(wallet, account, 2000)
    settle(client, admin_token, account, "账单-1", "80.00")
    wallet.clock.advance(minutes=1)
    settle(client, admin_token, account, "S-2", "1.50", product="sms")
    rows = table_rows(account_client.get("/billing/"), "bills")
    assert [row[1:] for row in rows] == [
        ["S-2", "SMS", "1.50", "Arrears 1.50"],
        ["账单-1", "General", "80.00", "Regular coupon 50.00, Cash 20.00, Arrears 10.00"],
    ]


def test_a_cloud_account_sees_the_share_its_cloud_account_paid(app, client, admin_token, token_for, new_account):
    account = new_account("Cloudy", settlement="cloud")
    settle(client, admin_token, account, "C-1", "30.00")
    cloud = app.test_client()
    sign_in(cloud, token_for("account", account["id"]))
    page = cloud.get("/billing/")
    assert [row[1:] for row in table_rows(page, "bills")] == [["C-1", "General", "30.00", "Cloud account 30.00"]]
    assert by_testid(page, "cash-balance") == "0.00"


def test_bills_of_other_accounts_are_not_listed(app, client, admin_token, account_client, new_account):
    other = new_account("Other")
    settle(client, admin_token, other, "OTHER-1", "5.00")
    html = account_client.get("/billing/").get_data(as_text=True)
    assert "OTHER-1" not in html and "No bills yet." in html


def test_an_expired_or_forged_session_leads_to_sign_in_and_its_forms_do_nothing(app, account_client, monkeypatch):
    import time

    form = account_client.get("/billing/recharge")
    signed_now = time.time
    aged = signed_now() + app.permanent_session_lifetime.total_seconds() + 60
    monkeypatch.setattr(time, "time", lambda: aged)
    assert account_client.get("/billing/").headers["Location"] == "/login?next=/billing/"
    sent = account_client.post("/billing/recharge",
                               data={"amount": "1.00", "method": "alipay", "csrf_token": csrf_of(form)})
    assert sent.status_code == 302 and sent.headers["Location"] == "/login"
    monkeypatch.setattr(time, "time", signed_now)
    forged = app.test_client()
    forged.set_cookie(app.config["SESSION_COOKIE_NAME"], "eyJ0b2tlbl9pZCI6MX0.forged.signature")
    assert forged.get("/billing/").headers["Location"] == "/login?next=/billing/"


def test_the_wallet_page_shows_the_newest_coupons_and_cards_and_how_many_there_are(
    account_client, wallet, account, monkeypatch
):
    from app.services.coupons import allocate_coupon
    from app.services.prepaid_cards import allocate_prepaid_card
    from app.web import billing

    monkeypatch.setattr(billing, "RECENT_UNITS", 2)
    now = wallet.clock.now()
    for fen in (1000, 2000, 3000):
        allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=fen,
                        valid_from=now, expires_at=now + timedelta(days=30), actor="test")
        allocate_prepaid_card(wallet.db, wallet.clock, account_id=account["id"], amount_fen=fen * 10,
                              expires_at=now + timedelta(days=365), actor="test")
    page = account_client.get("/billing/")
    assert [row[2] for row in table_rows(page, "coupons")] == ["20.00", "30.00"]
    assert [row[1] for row in table_rows(page, "prepaid-card-list")] == ["200.00", "300.00"]
    assert by_testid(page, "coupons-shown") == "The 2 newest of 3 coupons."
    assert by_testid(page, "prepaid-cards-shown") == "The 2 newest of 3 prepaid cards."
    # The figures still count every unit.
    assert by_testid(page, "regular-coupons") == "60.00"
    assert by_testid(page, "prepaid-cards") == "600.00"


def test_the_wallet_page_says_nothing_of_more_units_when_it_shows_them_all(account_client, wallet, account):
    from app.services.coupons import allocate_coupon

    now = wallet.clock.now()
    allocate_coupon(wallet.db, wallet.clock, account_id=account["id"], face_value_fen=5000,
                    valid_from=now, expires_at=now + timedelta(days=30), actor="test")
    html = account_client.get("/billing/").get_data(as_text=True)
    assert 'data-testid="coupons"' in html and 'data-testid="coupons-shown"' not in html


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"


def test_browsers_get_error_pages_of_ours_and_programs_problem_json(client, account_client):
    for path in ("/checkout/no-such-order", "/checkout/no-such-order/result", "/no/such/page", "/billing/no-such-page"):
        for who in (client, account_client):
            page = who.get(path, headers={"Accept": BROWSER_ACCEPT})
            if page.status_code == 302:  # a page behind the sign-in, asked for without a session
                continue
            assert page.status_code == 404, path
            assert page.mimetype == "text/html", path
            assert by_testid(page, "error-message"), path
            assert "<title>Not Found · Billing center</title>" in page.get_data(as_text=True), path
            assert "script-src 'self'" in page.headers["Content-Security-Policy"], path
            assert page.headers["X-Frame-Options"] == "DENY", path
    # Programs keep their problem+json, whatever they accept.
    for path, accept in (("/checkout/no-such-order", None), ("/no/such/page", "*/*"),
                         ("/api/v1/topups/nope", BROWSER_ACCEPT), ("/checkout/nope/status", "application/json")):
        answer = client.get(path, headers={"Accept": accept} if accept else {})
        assert answer.status_code in (401, 404) and answer.mimetype == "application/problem+json", path


def test_a_failing_page_is_our_500_or_503_page_not_json(client, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from app.web import checkout

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(checkout.topups, "get_topup", broken)
    page = client.get("/checkout/T1", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 500 and page.mimetype == "text/html"
    assert "a bug" not in page.get_data(as_text=True) and by_testid(page, "error-message")
    assert client.get("/checkout/T1").mimetype == "application/problem+json"

    def locked(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr(checkout.topups, "get_topup", locked)
    page = client.get("/checkout/T1/result", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert page.headers["Retry-After"] == "1" and "try again" in by_testid(page, "error-message")
    assert "database is locked" not in page.get_data(as_text=True)


def test_an_oversized_sign_in_form_is_our_413_page(client):
    page = client.post("/login", data={"token": "x" * 70_000}, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 413 and page.mimetype == "text/html"
    assert by_testid(page, "error-message")


def test_the_checkout_shows_amount_order_expiry_in_beijing_time_and_a_scalable_qr_code(
    account_client, wallet, alipay_http
):
    from datetime import datetime, timezone

    checkout = recharge_by_alipay(account_client, "66.60")
    before = wallet.clock.now().astimezone(timezone(timedelta(hours=8)))
    page = account_client.get(checkout)
    html = page.get_data(as_text=True)
    assert by_testid(page, "topup-amount") == "66.60" and "66.60</span> CNY" in html
    assert by_testid(page, "order-number") == checkout.rsplit("/", 1)[1]
    expiry = re.search(r"paid until <time[^>]*>([^<]+)</time> Beijing time", html).group(1)
    shown = datetime.strptime(expiry, "%Y-%m-%d %H:%M").replace(tzinfo=before.tzinfo)
    assert timedelta(minutes=13) <= shown - before <= timedelta(minutes=16)
    assert re.fullmatch(r"1[45]:\d\d", by_testid(page, "time-left"))
    qr = re.search(r'<div class="qr" role="img" aria-label="([^"]+)"[^>]*><svg([^>]*)>', html)
    assert qr and "66.60 CNY" in qr.group(1)
    assert "viewBox" in qr.group(2) and "width" not in qr.group(2)  # sized by the stylesheet
    assert 'fill="#fff"' in html  # its own white quiet zone
    assert 'data-testid="check-status"' in html  # the way to the result without the script


@pytest.mark.parametrize("seconds, shown", [(0, "0:00"), (59, "0:59"), (899, "14:59"), (3600, "1:00:00"), (90061, "25:01:01")])
def test_time_left_reads_as_minutes_and_seconds(seconds, shown):
    from app.web.checkout import time_left

    assert time_left(seconds) == shown


def test_the_result_of_a_pending_order_offers_to_check_again(account_client, alipay_http):
    checkout = recharge_by_alipay(account_client, "12.30")
    result = account_client.get(f"{checkout}/result")
    assert by_testid(result, "topup-status") == "pending" and by_testid(result, "result-amount") == "12.30"
    html = result.get_data(as_text=True)
    assert "Waiting for confirmation" in html and f'href="{checkout}/result"' in html and f'href="{checkout}"' in html


def test_the_result_of_an_unknown_order_says_it_is_unknown(client):
    page = client.get("/checkout/result")
    assert page.status_code == 200 and by_testid(page, "topup-status") == "unknown"
    assert "<title>Recharge result · Billing center</title>" in page.get_data(as_text=True)


def test_customer_pages_write_amounts_as_the_product_page_does_with_cny_never_yen_signs(account_client, wallet, account):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill:cny", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 3000)])
    for path in ("/billing/", "/billing/bank-transfer?amount=20", "/billing/prepaid-cards/buy"):
        html = account_client.get(path).get_data(as_text=True)
        assert "¥" not in html, path
    html = account_client.get("/billing/").get_data(as_text=True)
    assert re.search(r'data-testid="cash-balance">-30.00</span> CNY', html)
    assert "Overdue: 30.00 CNY." in html and "Amount (CNY)" in html
    assert 'data-testid="transfer-amount">20.00</span> CNY' in account_client.get("/billing/bank-transfer?amount=20").get_data(as_text=True)
