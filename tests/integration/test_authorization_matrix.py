"""Who may call what, route by route: every rule of the app's URL map against every kind of caller.

Each route is classified below by the contract's roles (API.md: admin may call everything;
finance the statements, the lines, reconcile and reading any wallet; an account its own
wallet, ledger, top-ups, bank-transfer details, coupons and cards; accounts, workspaces,
grants and bills admin only) or, for the pages and callbacks, by what the code says of them.
A route added without a classification fails the first test. Another account's resource and
one that does not exist are answered alike, so an account token learns nothing of the other.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.adapters.db.models import PageSession
from app.services.tokens import authenticate, revoke_token
from app.web.page_session import CSRF_FIELD
from tests.conftest import bearer
from tests.integration.statement_helpers import csv_file, row, upload
from tests.integration.test_pages import sign_in
from tests.integration.wallet_helpers import add_workspace, give_card, give_coupon, post_bill

PROBLEM = "application/problem+json"
MISSING_ACCOUNT = "acc_does_not_exist"
MISSING_ORDER = "T20261126NoSuchOrder0000000000"
MISSING_LINE = 987654321

# Who may call a route. API rules: "admin" only; "staff" admin and finance; "reader" admin,
# finance and the owning account; "owner" admin and the owning account. Pages: "account_page"
# (an account's own session; staff sent to their console), "finance_page" (finance and admin).
# "public": no credentials needed, and credentials change nothing. "form": public, but a POST
# must carry the page's CSRF token.
ADMIN, STAFF, READER, OWNER = "admin", "staff", "reader", "owner"
ACCOUNT_PAGE, FINANCE_PAGE, PUBLIC, FORM = "account_page", "finance_page", "public", "form"


@dataclass
class Route:
    access: str
    # Path for the resource of ``whose``: "own" (account A's), "other" (account B's), "missing".
    path: object
    body: dict = field(default_factory=dict)


def _acc(suffix: str):
    return lambda ids, whose: f"/api/v1/accounts/{ids['account', whose]}{suffix}"


def _fixed(path: str):
    return lambda ids, whose: path


ROUTES: dict[tuple[str, str], Route] = {
    # The JSON API.
    ("api.create_account", "POST"): Route(ADMIN, _fixed("/api/v1/accounts"), {"json": {}}),
    ("api.get_account", "GET"): Route(READER, _acc("")),
    ("api.add_workspace", "POST"): Route(ADMIN, _acc("/workspaces"), {"json": {}}),
    ("api.get_wallet", "GET"): Route(READER, _acc("/wallet")),
    ("api.get_ledger", "GET"): Route(READER, _acc("/ledger")),
    ("api.bank_transfer_details", "GET"): Route(READER, _acc("/bank-transfer")),
    ("api.list_coupons", "GET"): Route(READER, _acc("/coupons")),
    ("api.activate_coupon", "POST"): Route(OWNER, _acc("/coupons/activate"), {"json": {}}),
    ("api.list_prepaid_cards", "GET"): Route(READER, _acc("/prepaid-cards")),
    ("api.buy_prepaid_card", "POST"): Route(OWNER, _acc("/prepaid-cards"), {"json": {}}),
    ("api.create_topup", "POST"): Route(OWNER, _acc("/topups"), {"json": {}}),
    ("api.get_topup", "GET"): Route(READER, lambda ids, whose: f"/api/v1/topups/{ids['order', whose]}"),
    ("api.settle_bill", "POST"): Route(ADMIN, _fixed("/api/v1/bills"), {"json": {}}),
    ("api.create_coupons", "POST"): Route(ADMIN, _fixed("/api/v1/coupons"), {"json": {}}),
    ("api.allocate_prepaid_card", "POST"): Route(ADMIN, _fixed("/api/v1/prepaid-cards"), {"json": {}}),
    ("api.upload_statement", "POST"): Route(STAFF, _fixed("/api/v1/statements"), {"data": {}}),
    ("api.list_statement_lines", "GET"): Route(STAFF, _fixed("/api/v1/statement-lines")),
    ("api.match_statement_line", "POST"): Route(
        STAFF, lambda ids, whose: f"/api/v1/statement-lines/{ids['line', whose]}/match", {"json": {}}
    ),
    ("api.unmatch_statement_line", "POST"): Route(
        STAFF, lambda ids, whose: f"/api/v1/statement-lines/{ids['line', whose]}/unmatch", {"json": {}}
    ),
    ("api.run_reconcile", "POST"): Route(STAFF, _fixed("/api/v1/reconcile")),
    # The API describes itself to anyone.
    ("api.openapi_document", "GET"): Route(PUBLIC, _fixed("/api/v1/openapi.json")),
    # Alipay's callbacks: signed by Alipay, never by a token.
    ("alipay.notify", "POST"): Route(PUBLIC, _fixed("/alipay/notify"), {"data": {"out_trade_no": "x"}}),
    ("alipay.return_redirect", "GET"): Route(PUBLIC, _fixed("/alipay/return")),
    # The checkout pages are reached by the unguessable order number alone (app/web/checkout.py).
    ("pages.checkout", "GET"): Route(PUBLIC, lambda ids, whose: f"/checkout/{ids['order', 'own']}"),
    ("pages.checkout_status", "GET"): Route(PUBLIC, lambda ids, whose: f"/checkout/{ids['order', 'own']}/status"),
    ("pages.topup_result", "GET"): Route(PUBLIC, lambda ids, whose: f"/checkout/{ids['order', 'own']}/result"),
    ("pages.topup_result_unknown", "GET"): Route(PUBLIC, _fixed("/checkout/result")),
    # Probes and files.
    ("health.healthz", "GET"): Route(PUBLIC, _fixed("/healthz")),
    ("health.readyz", "GET"): Route(PUBLIC, _fixed("/readyz")),
    ("static", "GET"): Route(PUBLIC, _fixed("/static/checkout.js")),
    # The local Alipay sandbox, mounted only where it stands in for Alipay (never in production).
    ("alipay_sandbox.gateway", "GET"): Route(PUBLIC, _fixed("/_sandbox/alipay/gateway.do")),
    ("alipay_sandbox.gateway", "POST"): Route(PUBLIC, _fixed("/_sandbox/alipay/gateway.do"), {"data": {}}),
    ("alipay_sandbox.payer_page", "GET"): Route(PUBLIC, _fixed("/_sandbox/alipay/qr/no-such-code")),
    ("alipay_sandbox.pay", "POST"): Route(PUBLIC, _fixed("/_sandbox/alipay/qr/no-such-code/pay"), {"data": {}}),
    # Signing in and out.
    ("login.login_form", "GET"): Route(PUBLIC, _fixed("/login")),
    ("login.login_submit", "POST"): Route(FORM, _fixed("/login"), {"data": {"token": "wlt_not-a-token"}}),
    ("login.logout", "POST"): Route(FORM, _fixed("/logout")),
    # The customer's pages.
    ("billing.wallet_page", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/")),
    ("billing.recharge_form", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/recharge")),
    ("billing.recharge_submit", "POST"): Route(ACCOUNT_PAGE, _fixed("/billing/recharge"), {"data": {"method": "?"}}),
    ("billing.bank_transfer", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/bank-transfer")),
    ("billing.activate_form", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/coupons/activate")),
    ("billing.activate_submit", "POST"): Route(ACCOUNT_PAGE, _fixed("/billing/coupons/activate"), {"data": {}}),
    ("billing.buy_card_form", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/prepaid-cards/buy")),
    ("billing.buy_card_submit", "POST"): Route(ACCOUNT_PAGE, _fixed("/billing/prepaid-cards/buy"), {"data": {}}),
    ("billing.unknown", "GET"): Route(ACCOUNT_PAGE, _fixed("/billing/no-such-page")),
    ("billing.unknown", "POST"): Route(ACCOUNT_PAGE, _fixed("/billing/no-such-page"), {"data": {}}),
    # The finance console.
    ("finance.console", "GET"): Route(FINANCE_PAGE, _fixed("/finance/")),
    ("finance.unknown", "GET"): Route(FINANCE_PAGE, _fixed("/finance/no-such-page")),
    ("finance.unknown", "POST"): Route(FINANCE_PAGE, _fixed("/finance/no-such-page"), {"data": {}}),
}

API_ACCESS = (ADMIN, STAFF, READER, OWNER)
# Who passes each API rule's check; "own" is an account token on its own account's resource.
ALLOWED = {
    ADMIN: {"admin"},
    STAFF: {"admin", "finance"},
    READER: {"admin", "finance", "own"},
    OWNER: {"admin", "own"},
}
# Callers whose credentials are not valid: missing, malformed, of another scheme, revoked, or
# a page session's cookie (which opens pages only: the API reads no cookie, so no other site's
# form can act with it).
API_UNAUTHENTICATED = ("none", "malformed", "not_bearer", "empty_bearer", "revoked", "cookie_only")
# A 401 names the scheme (RFC 6750), and says when the token sent was the fault.
BEARER_CHALLENGE = {"missing_token": "Bearer", "invalid_token": 'Bearer error="invalid_token"'}
API_CALLERS = API_UNAUTHENTICATED + ("own", "other", "missing", "finance", "admin")
# Page callers: signed out, a forged cookie, a session past its 12 hours, a session whose token
# was revoked, a bearer token without a session, then live sessions.
PAGE_SIGNED_OUT = ("none", "forged_cookie", "expired_session", "revoked_session", "bearer_only")
PAGE_CALLERS = PAGE_SIGNED_OUT + ("own", "other", "finance", "admin")
# Form POSTs by a session the page admits: no CSRF field, and the CSRF token of another session.
CSRF_CALLERS = ("member_without_csrf", "member_with_others_csrf")


def _rules(app):
    """Every (endpoint, method) the app serves; HEAD and OPTIONS are Flask's own."""
    return {
        (rule.endpoint, method): rule.rule
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


@pytest.fixture
def app(make_app, sqlite_url):
    # Who may call what does not depend on the database: SQLite keeps the matrix quick.
    return make_app(sqlite_url)


@dataclass
class World:
    app: object
    ids: dict
    tokens: dict
    sessions: dict


def _age_sessions(wallet, token: str) -> None:
    """Make every page session of ``token`` older than a session lives."""
    token_id = authenticate(wallet.db, token).token_id
    with wallet.db.transaction() as session:
        session.execute(
            update(PageSession)
            .where(PageSession.token_id == token_id)
            .values(created_at=wallet.clock.now() - timedelta(hours=12, seconds=1))
        )


@pytest.fixture
def world(app, client, wallet, admin_token, token_for, new_account, alipay_http) -> World:
    """Two accounts, A ("own") and B ("other"), each with a workspace, a coupon, a prepaid
    card and a top-up order, B with a bill and a matched statement line; tokens and page
    sessions of every kind."""
    a, b = new_account("Account A"), new_account("Account B")
    tokens = {
        "admin": admin_token,
        "finance": token_for("finance"),
        "own": token_for("account", a["id"]),
        "other": token_for("account", b["id"]),
        "revoked": token_for("account", a["id"]),
        "expired": token_for("account", a["id"]),
    }
    orders, units = {}, {}
    for whose, account in (("own", a), ("other", b)):
        add_workspace(client, admin_token, account["id"], f"ws-{whose}")
        units["coupon", whose] = give_coupon(client, admin_token, account["id"], "10.00")["id"]
        units["card", whose] = give_card(client, admin_token, account["id"], "100.00")["id"]
        created = client.post(f"/api/v1/accounts/{account['id']}/topups",
                              json={"amount": "1.00", "method": "alipay"}, headers=bearer(tokens[whose]))
        assert created.status_code == 201, created.get_data(as_text=True)
        orders[whose] = created.get_json()["out_trade_no"]
    assert post_bill(client, admin_token, "bill-other", "ws-other", "1.00").status_code == 201
    statement = csv_file(row(b["remittance_code"], "5.00", tid="tx-b"), row("no code", "6.00", tid="tx-none"))
    assert upload(client, tokens["finance"], statement).status_code == 201
    lines = client.get("/api/v1/statement-lines?limit=200", headers=bearer(tokens["finance"])).get_json()["lines"]
    line_of = {line["memo"]: line["id"] for line in lines}
    ids = {
        ("account", "own"): a["id"],
        ("account", "other"): b["id"],
        ("account", "missing"): MISSING_ACCOUNT,
        ("order", "own"): orders["own"],
        ("order", "other"): orders["other"],
        ("order", "missing"): MISSING_ORDER,
        ("line", "own"): line_of["no code"],
        ("line", "other"): line_of[b["remittance_code"]],
        ("line", "missing"): MISSING_LINE,
        ("remittance_code", "own"): a["remittance_code"],
        ("remittance_code", "other"): b["remittance_code"],
        **units,
    }

    def signed_in(token: str):
        page = app.test_client()
        assert sign_in(page, token).status_code == 302
        return page

    sessions = {name: signed_in(tokens[name]) for name in ("own", "other", "finance", "admin")}
    sessions["revoked_session"] = signed_in(tokens["revoked"])
    sessions["expired_session"] = signed_in(tokens["expired"])
    assert revoke_token(wallet.db, wallet.clock, authenticate(wallet.db, tokens["revoked"]).token_id)
    _age_sessions(wallet, tokens["expired"])
    forged = app.test_client()
    forged.set_cookie(app.config["SESSION_COOKIE_NAME"], "eyJ0b2tlbl9pZCI6MX0.forged.signature")
    sessions["forged_cookie"] = forged
    return World(app=app, ids=ids, tokens=tokens, sessions=sessions)


def _csrf(client) -> str:
    with client.session_transaction() as session:
        return session.get("csrf", "")


def _send(client, method: str, path: str, route: Route, *, headers=None, csrf: str | None = None):
    kwargs = {key: dict(value) for key, value in route.body.items()}
    if csrf is not None:
        kwargs.setdefault("data", {})[CSRF_FIELD] = csrf
    return client.open(path, method=method, headers=headers or {}, **kwargs)



def _api_call(world: World, route: Route, method: str, caller: str):
    """Call an API route as ``caller``; the account token is account A's throughout."""
    client, headers, whose = world.app.test_client(), {}, "own"
    if caller == "malformed":
        headers = bearer("wlt_not-a-token")
    elif caller == "not_bearer":
        headers = {"Authorization": "Basic d2x0XzpzZWNyZXQ="}
    elif caller == "empty_bearer":
        headers = {"Authorization": "Bearer "}
    elif caller == "revoked":
        headers = bearer(world.tokens["revoked"])
    elif caller == "cookie_only":
        client = world.sessions["own"]
    elif caller in ("own", "other", "missing"):
        headers, whose = bearer(world.tokens["own"]), caller
    elif caller in ("finance", "admin"):
        headers = bearer(world.tokens[caller])
    return _send(client, method, route.path(world.ids, whose), route, headers=headers)


def _problem(response) -> tuple[int, str | None]:
    body = response.get_json(silent=True) if response.mimetype == PROBLEM else None
    return response.status_code, (body or {}).get("code")


def _shows_the_other_account(world: World, response) -> bool:
    """Whether an answer about account A names account B, its order, or its coupon or card."""
    body = response.get_json()
    text = response.get_data(as_text=True)
    named = any(world.ids[kind, "other"] in text for kind in ("account", "order", "remittance_code"))
    listed = {kind: body.get(name) for kind, name in (("coupon", "coupons"), ("card", "cards"))}
    units = {(kind, unit["id"]) for kind, items in listed.items() if isinstance(items, list) for unit in items}
    return named or bool(units & {("coupon", world.ids["coupon", "other"]), ("card", world.ids["card", "other"])})


def _check_api(world: World, name: str, route: Route, method: str, found: list[str]) -> int:
    answers = {caller: _api_call(world, route, method, caller) for caller in API_CALLERS}
    allowed = ALLOWED[route.access]

    def wrong(caller: str, expected: str) -> None:
        response = answers[caller]
        found.append(f"{method} {name} as {caller}: expected {expected}, got {response.status_code} "
                     f"{response.get_data(as_text=True)[:160]!r}")

    for caller, response in answers.items():
        status, code = _problem(response)
        if caller in API_UNAUTHENTICATED:
            if (status, code) not in ((401, "missing_token"), (401, "invalid_token")):
                wrong(caller, "401 problem missing_token or invalid_token")
            elif response.headers.get("WWW-Authenticate") != BEARER_CHALLENGE[code]:
                wrong(caller, f"the challenge WWW-Authenticate: {BEARER_CHALLENGE[code]}")
        elif caller in allowed:
            if status in (401, 403, 404) or status >= 500 or (method == "GET" and status != 200):
                wrong(caller, "the route's answer (GET 200; a POST's empty body refused as input)")
            elif route.access == READER and _shows_the_other_account(world, response):
                wrong(caller, "account A's data only, nothing of account B")
        elif caller in ("finance", "admin", "own"):
            if (status, code) != (403, "wrong_role"):
                wrong(caller, "403 problem wrong_role")
    # Another account's resource and a missing one: the same refusal, so neither shows existence.
    other, missing = _problem(answers["other"]), _problem(answers["missing"])
    if other[0] not in (403, 404) or other != missing:
        wrong("other", f"403 or 404, the same as for a missing resource {missing}")
    if route.access in (READER, OWNER) and other[0] == 403 and other[1] not in ("other_account", "wrong_role"):
        wrong("other", "403 other_account")
    return len(answers)


def _page_client(world: World, route: Route, caller: str):
    if caller == "none":
        return world.app.test_client(), {}
    if caller == "bearer_only":
        return world.app.test_client(), bearer(world.tokens["own"])
    if caller in CSRF_CALLERS:
        # A session the page admits, so that only the CSRF check stands in the way.
        return world.sessions["own" if route.access == ACCOUNT_PAGE else "finance"], {}
    return world.sessions[caller], {}


def _check_page(world: World, name: str, route: Route, method: str, found: list[str]) -> int:
    path = route.path(world.ids, "own")
    callers = PAGE_CALLERS + (CSRF_CALLERS if method == "POST" else ())
    checked = 0
    for caller in callers:
        client, headers = _page_client(world, route, caller)
        csrf = None
        if method == "POST" and caller != "member_without_csrf":
            csrf = _csrf(world.sessions["other"] if caller == "member_with_others_csrf" else client)
        response = _send(client, method, path, route, headers=headers, csrf=csrf)
        checked += 1
        status, location = response.status_code, response.headers.get("Location", "")
        if caller in PAGE_SIGNED_OUT:
            expected = "a redirect to /login"
            ok = status == 302 and location.startswith("/login")
        elif caller in CSRF_CALLERS:
            expected, ok = "400 (no CSRF token of this session)", status == 400
        elif route.access == ACCOUNT_PAGE and caller in ("finance", "admin"):
            expected, ok = "a redirect to /finance/", status == 302 and location == "/finance/"
        elif route.access == FINANCE_PAGE and caller in ("own", "other"):
            expected, ok = "403", status == 403
        else:
            expected = "the page (not a sign-in, role or CSRF refusal)"
            ok = status not in (302, 400, 401, 403) and status < 500
            shown = re.sub(r"[\s-]", "", response.get_data(as_text=True))
            if ok and caller == "other" and world.ids["remittance_code", "own"] in shown:
                expected, ok = "nothing of account A", False
        if not ok:
            found.append(f"{method} {name} as {caller}: expected {expected}, got {status} {location}")
    return checked


def _check_public(world: World, name: str, route: Route, method: str, found: list[str]) -> int:
    """Credentials change nothing on a public route (but a signed-in visit to the sign-in form,
    which goes home); a FORM POST needs the CSRF token of the visitor's session."""
    checked = 0
    visitor = world.app.test_client()
    visitor.get("/login")  # a visitor's CSRF token, as the sign-in form gives it
    callers = {
        "none": (world.app.test_client(), {}, None),
        "bearer_own": (world.app.test_client(), bearer(world.tokens["own"]), None),
        "bearer_admin": (world.app.test_client(), bearer(world.tokens["admin"]), None),
        "malformed": (world.app.test_client(), bearer("wlt_not-a-token"), None),
        "session_other": (world.sessions["other"], {}, None),
    }
    if route.access == FORM:
        callers["visitor_with_csrf"] = (visitor, {}, _csrf(visitor))
        callers["own_with_others_csrf"] = (world.sessions["own"], {}, _csrf(world.sessions["other"]))
    answers = {}
    for caller, (client, headers, csrf) in callers.items():
        answers[caller] = _send(client, method, route.path(world.ids, "own"), route, headers=headers, csrf=csrf)
        checked += 1
    for caller, response in answers.items():
        status = response.status_code
        if route.access == FORM and method == "POST":
            ok = (status != 400) if caller == "visitor_with_csrf" else status == 400
            expected = "the form's answer" if caller == "visitor_with_csrf" else "400 (no CSRF token of this session)"
        elif name == "login.login_form" and caller.startswith("session"):
            ok, expected = status == 302, "a redirect home"
        else:
            ok = status == answers["none"].status_code and status not in (401, 403) and status < 500
            expected = f"the answer without credentials ({answers['none'].status_code})"
        if not ok:
            found.append(f"{method} {name} as {caller}: expected {expected}, got {status}")
    return checked


def test_every_route_of_the_app_is_classified(app):
    served = _rules(app)
    unclassified = sorted(f"{method} {rule} ({endpoint})" for (endpoint, method), rule in served.items()
                          if (endpoint, method) not in ROUTES)
    assert not unclassified, "routes without a rule of who may call them: " + ", ".join(unclassified)
    assert not set(ROUTES) - set(served), "classified routes the app no longer serves"


def test_every_route_answers_every_kind_of_caller_as_its_rule_says(world):
    found: list[str] = []
    checked = 0
    # Signing out ends the session it is sent with: last, on a session of its own.
    order = sorted(ROUTES, key=lambda key: key == ("login.logout", "POST"))
    for name, method in order:
        route = ROUTES[name, method]
        if route.access in API_ACCESS:
            checked += _check_api(world, name, route, method, found)
        elif route.access in (ACCOUNT_PAGE, FINANCE_PAGE):
            checked += _check_page(world, name, route, method, found)
        else:
            checked += _check_public(world, name, route, method, found)
    assert checked > 400
    assert not found, f"{len(found)} of {checked} answers break the rules:\n" + "\n".join(found)


def test_the_rules_are_the_roles_the_api_document_names(app):
    """The classification above and the OpenAPI document's ``x-roles`` say the same."""
    from app.web.openapi import document

    roles_of = {ADMIN: ["admin"], STAFF: ["admin", "finance"], READER: ["admin", "finance", "account"],
                OWNER: ["admin", "account"]}
    spec = json.loads(document())
    served = _rules(app)
    differ = []
    for (name, method), route in ROUTES.items():
        path = re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", served[name, method])
        operation = spec["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # pages, files and the sandbox are not part of the API document
        documented = operation.get("x-roles") if operation.get("security", spec["security"]) else PUBLIC
        if documented != roles_of.get(route.access, PUBLIC):
            differ.append(f"{method} {path}: {route.access} here, {documented} in the document")
    assert not differ, differ


def test_head_answers_every_caller_as_get_does_and_options_shows_nothing(world):
    callers = {
        "none": (world.app.test_client(), {}),
        "malformed": (world.app.test_client(), bearer("wlt_not-a-token")),
        "account_token": (world.app.test_client(), bearer(world.tokens["own"])),
        "finance_token": (world.app.test_client(), bearer(world.tokens["finance"])),
        "account_session": (world.sessions["own"], {}),
        "other_session": (world.sessions["other"], {}),
        "finance_session": (world.sessions["finance"], {}),
    }
    found = []
    for (name, method), route in ROUTES.items():
        for whose in ("own", "other"):
            path = route.path(world.ids, whose)
            if method == "GET":
                for caller, (client, headers) in callers.items():
                    got, head = client.get(path, headers=headers), client.head(path, headers=headers)
                    if head.status_code != got.status_code or head.get_data():
                        found.append(f"HEAD {name} ({whose}) as {caller}: {head.status_code}, GET {got.status_code}")
            options = world.app.test_client().options(path)
            signed_out = options.status_code == 302 and options.headers["Location"].startswith("/login")
            if not (signed_out or options.status_code == 200 and not options.get_data()):
                found.append(f"OPTIONS {name} ({whose}): {options.status_code} {options.get_data()[:80]!r}")
    assert not found, "\n".join(found)
