"""Every pair of money movements, fired at the same moment on one account, on PostgreSQL.

The operations are the ways money or units move (``OPERATIONS``). For each pair of them, an
operation with itself included (the same request twice: a duplicate), an account is prepared
the same way each time, in each of two ``SHAPES`` (holding money, or owing it), and the two are
released together by a barrier from threads of their own: HTTP requests through the Flask test
client (each thread its own client, hence its own connections), the jobs called as the
scheduler calls them. Each pair runs ``REPETITIONS`` times in each shape. After each run:

- no request answered 500 and no job raised (``ledger verify`` among them: money moving
  while it reads is no difference); a race lost to the database is a 503
  ``database_unavailable`` with ``Retry-After`` (the notify: ``failure``, so Alipay sends it
  again), and is sent again, as the contract asks a client to do;
- every answer is one the contract gives for the operation (``ANSWERS``);
- the account ends exactly as if the two had run one after the other, in one order or the
  other: balances, units, statuses of its order and lines, and its ledger keys (so each movement
  happened once, and nothing else did);
- ``ledger verify`` finds nothing, after each pair.
"""
from __future__ import annotations

import io
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import combinations_with_replacement
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, text, update

from app.adapters.alipay.sandbox.notify_builder import build_signed_notify, encode_form
from app.adapters.db.models import (
    Account,
    Bill,
    Coupon,
    LedgerTransaction,
    PrepaidCard,
    StatementLine,
    TopupOrder,
)
from app.domain.remittance import generate_code
from app.jobs import JOBS
from app.services import ledger
from app.services.accounts import add_workspace, create_account
from app.services.bills import settle_bill
from app.services.coupons import allocate_coupon, issue_codes
from app.services.expiry import expire_credits
from app.services.prepaid_cards import allocate_prepaid_card
from app.services.statement_import import import_statement
from app.services.tokens import create_token
from app.services.topups import create_topup, poll_pending_topups
from tests.conftest import bearer
from tests.integration.statement_helpers import csv_file, row
from tests.integration.wallet_helpers import at_once, top_up

pytestmark = pytest.mark.postgres

# 15 operations: 120 pairs. Two runs of each pair in each shape, and one or two one after the
# other to compare with, keep the matrix near 40 s.
REPETITIONS = 2
# "holding": cash 300.00, a 20.00 coupon and a 30.00 card. "owing": the same, then an sms bill
# larger than the cash and the card, so the account owes and every credit pays arrears first
# (the notify's general path, not its one-statement one).
SHAPES = ("holding", "owing")
# A 503 is sent again at most this many times before the test gives up.
RESENDS = 5


@pytest.fixture
def db_url(pg_url):
    """PostgreSQL only: SQLite serialises writers at BEGIN, so nothing races there."""
    return pg_url


@dataclass
class Case:
    """One prepared account and what its operations need."""

    tag: str
    account_id: str
    workspace_id: str
    token: str
    order: str | None = None
    notify: bytes | None = None
    code: str | None = None
    lines: dict[str, int] = field(default_factory=dict)  # role -> statement line id
    statement: bytes | None = None


@dataclass
class Env:
    app: object
    wallet: object
    sandbox: object
    admin: str
    finance: str
    resent: Counter = field(default_factory=Counter)


# -- the operations -------------------------------------------------------------------------


def _http(env: Env, name: str, send: Callable) -> tuple[int, str | None]:
    """Send a request from a client of its own; send it again after a 503, as a client must."""
    for _ in range(RESENDS + 1):
        response = send(env.app.test_client())
        status = response.status_code
        assert status != 500, (name, response.get_data(as_text=True))
        if status != 503:
            if name == "notify":
                return status, response.get_data(as_text=True)
            body = response.get_json(silent=True) or {}
            return status, body.get("code") if status >= 400 else None
        if name == "notify":
            assert response.get_data() == b"failure", response.get_data()
        else:
            assert response.mimetype == "application/problem+json", response.get_data()
            assert response.get_json()["code"] == "database_unavailable"
            assert response.headers["Retry-After"] == "1"
        env.resent[name] += 1
        time.sleep(0.01)
    raise AssertionError(f"{name}: still 503 after {RESENDS} resends")


def _notify(env, case):
    return _http(env, "notify", lambda c: c.post(
        "/alipay/notify", data=case.notify, content_type="application/x-www-form-urlencoded"))


def _status(env, case):
    return _http(env, "status", lambda c: c.get(f"/api/v1/topups/{case.order}", headers=bearer(case.token)))


def _poll(env, case):
    counts = poll_pending_topups(env.wallet.db, env.wallet.clock, env.wallet.gateway)
    assert counts["errors"] == 0, counts
    return counts


def _bill(env, case):
    body = {"bill_id": f"bill-{case.tag}", "workspace_id": case.workspace_id, "product": "general",
            "amount": "400.00"}
    return _http(env, "bill", lambda c: c.post("/api/v1/bills", json=body, headers=bearer(env.admin)))


def _card_buy(env, case):
    return _http(env, "card_buy", lambda c: c.post(
        f"/api/v1/accounts/{case.account_id}/prepaid-cards", json={"amount": "100.00"}, headers=bearer(case.token)))


def _card_grant(env, case):
    body = {"account_id": case.account_id, "amount": "8.00", "expires_at": NEXT_YEAR}
    headers = {**bearer(env.admin), "Idempotency-Key": f"card-{case.tag}"}
    return _http(env, "card_grant", lambda c: c.post("/api/v1/prepaid-cards", json=body, headers=headers))


def _coupon_grant(env, case):
    body = {"kind": "regular", "amount": "5.00", "expires_at": NEXT_YEAR, "account_id": case.account_id}
    headers = {**bearer(env.admin), "Idempotency-Key": f"coupon-{case.tag}"}
    return _http(env, "coupon_grant", lambda c: c.post("/api/v1/coupons", json=body, headers=headers))


def _activate(env, case):
    return _http(env, "activate", lambda c: c.post(
        f"/api/v1/accounts/{case.account_id}/coupons/activate", json={"code": case.code}, headers=bearer(case.token)))


def _upload(env, case):
    def send(c):
        form = {"file": (io.BytesIO(case.statement), f"{case.tag}.csv")}
        return c.post("/api/v1/statements", data=form, headers=bearer(env.finance), content_type="multipart/form-data")

    return _http(env, "upload", send)


def _match(env, case):
    return _http(env, "match", lambda c: c.post(
        f"/api/v1/statement-lines/{case.lines['m']}/match",
        json={"account_id": case.account_id, "reason": "named on the phone"}, headers=bearer(env.finance)))


def _unmatch(env, case):
    return _http(env, "unmatch", lambda c: c.post(
        f"/api/v1/statement-lines/{case.lines['u']}/unmatch", json={"reason": "another payer's"},
        headers=bearer(env.finance)))


def _reconcile(env, case):
    return _http(env, "reconcile", lambda c: c.post("/api/v1/reconcile", headers=bearer(env.finance)))


def _expire(env, case):
    return expire_credits(env.wallet.db, env.wallet.clock)


def _inbox(env, case):
    summary = JOBS["statements-import"].run(env.wallet)
    assert summary.errors == 0, summary
    return summary


def _verify(env, case):
    summary = JOBS["ledger-verify"].run(env.wallet)
    assert summary == "ledger clean", summary
    return summary


NEXT_YEAR = "2027-11-26T04:00:00+00:00"

OPERATIONS: dict[str, Callable] = {
    "notify": _notify,  # Alipay's notify for the account's paid order
    "status": _status,  # the order's status read, which queries Alipay and credits
    "poll": _poll,  # the alipay-poll job
    "bill": _bill,  # a bill larger than all the account holds
    "card_buy": _card_buy,  # a prepaid card bought with cash
    "card_grant": _card_grant,  # a card allocated by an administrator
    "coupon_grant": _coupon_grant,  # a coupon allocated by an administrator
    "activate": _activate,  # a coupon activation code redeemed
    "upload": _upload,  # a statement whose line carries the account's remittance code
    "match": _match,  # an unmatched line matched to the account by hand
    "unmatch": _unmatch,  # a line matched to the account, undone
    "reconcile": _reconcile,  # a reconcile run that matches a waiting line to the account
    "inbox": _inbox,  # the statements-import job, its inbox holding the upload's very file
    "expire": _expire,  # the credits-expire job, with a coupon and a card of the account due
    "verify": _verify,  # the ledger-verify job, which moves nothing and must find nothing
}

# What each operation may answer (status, problem code; the notify: its body).
ANSWERS = {
    "notify": {(200, "success")},
    "status": {(200, None)},
    "bill": {(201, None), (200, None)},
    "card_buy": {(201, None), (409, "insufficient_funds")},
    "card_grant": {(201, None), (409, "idempotency_in_progress")},
    "coupon_grant": {(201, None), (409, "idempotency_in_progress")},
    "activate": {(201, None), (422, "activation_code_used")},
    "upload": {(201, None), (200, None)},
    "match": {(200, None), (409, "line_already_matched")},
    "unmatch": {(200, None), (409, "line_not_matched")},
    "reconcile": {(200, None)},
}


# -- preparing an account -------------------------------------------------------------------


def prepare(env: Env, names: set[str], shape: str) -> Case:
    """An account in ``shape``, with what the operations ``names`` need."""
    w = env.wallet
    now = w.clock.now()
    account = create_account(w.db, w.clock, name="Pair", settlement="guance")
    tag = uuid.uuid4().hex[:12]
    case = Case(tag=tag, account_id=account.id, workspace_id=f"ws-{tag}",
                token=create_token(w.db, w.clock, role="account", account_id=account.id))
    add_workspace(w.db, w.clock, account_id=account.id, workspace_id=case.workspace_id)
    top_up(w, account.id, 300_00, f"seed:{account.id}")
    year = now + timedelta(days=365)
    allocate_coupon(w.db, w.clock, account_id=account.id, face_value_fen=20_00, valid_from=None, expires_at=year,
                    actor="test")
    allocate_prepaid_card(w.db, w.clock, account_id=account.id, amount_fen=30_00, expires_at=year, actor="test")
    if names & {"notify", "status", "poll"}:
        order = create_topup(w.db, w.clock, w.gateway, w.settings, account_id=account.id, amount_fen=100_00)
        case.order = order.out_trade_no
        assert env.sandbox.pay(urlsplit(order.qr_code).path.rstrip("/").rsplit("/", 1)[-1], charset="utf-8")[1]
        case.notify = encode_form(_paid_notify(env, order.out_trade_no, "100.00"))
        if "poll" in names:  # old enough for the poll job to ask about it
            with w.db.transaction() as session:
                session.execute(update(TopupOrder).where(TopupOrder.out_trade_no == order.out_trade_no)
                                .values(created_at=now - timedelta(minutes=2)))
    if "activate" in names:
        [case.code] = issue_codes(w.db, w.clock, secret_key=w.settings.secret_key, count=1, face_value_fen=6_00,
                                  valid_from=None, expires_at=year, actor="test")
    code = account.remittance_code
    rows = []
    if "match" in names:  # no code: it waits unmatched
        rows.append(row("货款", "11.00", tid=f"{tag}-m", payer=f"m{tag}"))
    if "unmatch" in names:  # the account's code: matched and credited at once
        rows.append(row(code, "12.00", tid=f"{tag}-u", payer=f"u{tag}"))
    if "reconcile" in names:  # a code no account holds yet: it waits, until the account gets it
        code = generate_code()
        rows.append(row(code, "13.00", tid=f"{tag}-r", payer=f"r{tag}"))
    if rows:
        import_statement(w.db, w.clock, data=csv_file(*rows), filename=f"{tag}-prep.csv", actor="test")
        with w.db.transaction() as session:
            session.execute(update(Account).where(Account.id == account.id).values(remittance_code=code))
            found = session.execute(select(StatementLine.transaction_id, StatementLine.id)
                                    .where(StatementLine.transaction_id.like(f"{tag}-%"))).all()
        case.lines = {tid.rsplit("-", 1)[1]: line_id for tid, line_id in found}
    if shape == "owing":
        assert settle_bill(w.db, w.clock, bill_id=f"owing-{tag}", workspace_id=case.workspace_id, product="sms",
                           amount_fen=400_00).result["allocations"][-1]["source"] == "arrears"
    case.statement = csv_file(row(code, "10.00", tid=f"{tag}-up", payer=f"up{tag}"))
    if "inbox" in names:
        inbox = w.settings.statement_inbox
        inbox.mkdir(parents=True, exist_ok=True)
        path = inbox / f"{tag}.csv"
        path.write_bytes(case.statement)
        os.utime(path, (time.time() - 60, time.time() - 60))  # settled: no copy is still going on
    if "expire" in names:
        coupon = allocate_coupon(w.db, w.clock, account_id=account.id, face_value_fen=7_00, valid_from=None,
                                 expires_at=year, actor="test")
        card = allocate_prepaid_card(w.db, w.clock, account_id=account.id, amount_fen=9_00, expires_at=year,
                                     actor="test")
        with w.db.transaction() as session:
            for model, unit in ((Coupon, coupon), (PrepaidCard, card)):
                session.execute(update(model).where(model.id == int(unit["id"])).values(
                    valid_from=now - timedelta(days=2), expires_at=now - timedelta(days=1)))
    return case


def _paid_notify(env: Env, out_trade_no: str, amount: str) -> dict:
    return build_signed_notify(
        env.sandbox.alipay_private_key,
        notify_time="2026-11-26 12:05:00",
        notify_type="trade_status_sync",
        notify_id="n" + out_trade_no,
        app_id=env.wallet.settings.alipay_app_id,
        charset="utf-8",
        version="1.0",
        trade_no="2026112622001400001",
        out_trade_no=out_trade_no,
        buyer_id="2088102177846880",
        seller_id=env.sandbox.seller_id,
        trade_status="TRADE_SUCCESS",
        total_amount=amount,
        receipt_amount=amount,
        subject="Wallet top-up",
        gmt_payment="2026-11-26 12:04:59",
    )


# -- what an account ends with --------------------------------------------------------------


def final_state(env: Env, case: Case) -> tuple:
    """The account as plain values, without ids: comparable between two prepared accounts."""
    roles = {line_id: role for role, line_id in case.lines.items()}
    with env.wallet.db.sessions() as session:
        account = session.get(Account, case.account_id)
        coupons = sorted(session.execute(
            select(Coupon.kind, Coupon.origin, Coupon.face_value_fen, Coupon.balance_fen, Coupon.status)
            .where(Coupon.account_id == case.account_id)).all())
        cards = sorted(session.execute(
            select(PrepaidCard.origin, PrepaidCard.face_value_fen, PrepaidCard.balance_fen, PrepaidCard.status)
            .where(PrepaidCard.account_id == case.account_id)).all())
        orders = sorted(session.execute(select(TopupOrder.status, TopupOrder.amount_fen)
                                        .where(TopupOrder.account_id == case.account_id)).all())
        lines = sorted(
            (tid.rsplit("-", 1)[1], status, credits, account_id == case.account_id)
            for tid, status, credits, account_id in session.execute(
                select(StatementLine.transaction_id, StatementLine.status, StatementLine.credits,
                       StatementLine.account_id).where(StatementLine.transaction_id.like(f"{case.tag}-%"))))
        keys = Counter(
            _plain_key(key, case, roles)
            for key in session.execute(select(LedgerTransaction.idempotency_key)
                                       .where(LedgerTransaction.account_id == case.account_id)).scalars())
        bills = session.execute(select(Bill.bill_id).where(Bill.account_id == case.account_id)).scalars().all()
    return (
        ("cash", account.cash_fen, "arrears", account.arrears_fen, "invoiceable", account.invoiceable_fen),
        ("coupons", tuple(map(tuple, coupons))),
        ("cards", tuple(map(tuple, cards))),
        ("orders", tuple(map(tuple, orders))),
        ("lines", tuple(lines)),
        ("bills", len(bills)),
        ("keys", tuple(sorted(keys.items()))),
    )


def _plain_key(key: str, case: Case, roles: dict[int, str]) -> str:
    """A ledger key without what differs between two prepared accounts (ids, numbers, digests)."""
    key = key.replace(case.account_id, "ACCOUNT").replace(case.tag, "TAG")
    if case.order:
        key = key.replace(case.order, "ORDER")
    key = re.sub(r"^bank:(\d+)", lambda m: "bank:" + roles.get(int(m.group(1)), "upload"), key)
    key = re.sub(r"[0-9a-f]{64}", "DIGEST", key)
    return re.sub(r":\d+$", ":ID", key)


# -- running a pair -------------------------------------------------------------------------


def _check_answer(name: str, answer) -> None:
    if name in ANSWERS:
        assert answer in ANSWERS[name], (name, answer)


def one_after_the_other(env: Env, shape: str, first: str, second: str) -> tuple:
    case = prepare(env, {first, second}, shape)
    for name in (first, second):
        _check_answer(name, OPERATIONS[name](env, case))
    return final_state(env, case)


def at_the_same_moment(env: Env, shape: str, first: str, second: str) -> tuple:
    case = prepare(env, {first, second}, shape)
    names = (first, second)
    answers = at_once(2, lambda i: OPERATIONS[names[i]](env, case))
    for name, answer in zip(names, answers):
        assert not isinstance(answer, BaseException), (names, name, repr(answer))
        _check_answer(name, answer)
    return final_state(env, case)


def _deadlocks(wallet) -> int:
    with wallet.db.sessions() as session:
        return session.scalar(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))


PAIRS = list(combinations_with_replacement(OPERATIONS, 2))


def test_every_pair_of_money_movements_at_once_on_one_account_ends_as_one_after_the_other(
        app, wallet, alipay_http, sandbox, admin_token, token_for):
    env = Env(app, wallet, sandbox, admin_token, token_for("finance"))
    started, deadlocks = time.monotonic(), _deadlocks(wallet)
    failed = []
    for pair in PAIRS:
        try:
            _run_pair(env, *pair)
        except AssertionError as exc:  # the other pairs still run: the report names every one
            failed.append(f"{' and '.join(pair)}: {exc}")
    summary = (f"{len(OPERATIONS)} operations, {len(PAIRS)} pairs x {len(SHAPES)} shapes x {REPETITIONS} runs"
               f" in {time.monotonic() - started:.1f} s; sent again after a 503: {dict(env.resent)};"
               f" deadlocks: {_deadlocks(wallet) - deadlocks}")
    print(f"\n{summary}")
    assert not failed, "\n".join([summary, *failed])


def _run_pair(env: Env, first: str, second: str) -> None:
    for shape in SHAPES:
        expected: dict[tuple[str, str], tuple] = {}
        for repetition in range(REPETITIONS):
            found = at_the_same_moment(env, shape, first, second)
            orders = [(first, second)] if first == second else [(first, second), (second, first)]
            for order in orders:
                if order not in expected:
                    expected[order] = one_after_the_other(env, shape, *order)
                if found == expected[order]:
                    break
            else:
                raise AssertionError(
                    f"at once ({shape}, run {repetition + 1}) they ended in a state neither order gives:\n"
                    f"  at once:   {found}\n" + "".join(f"  {a}, {b}: {s}\n" for (a, b), s in expected.items()))
    with env.wallet.db.snapshot() as session:
        assert ledger.verify(session) == []
        assert ledger.verify_references(session) == []
        assert ledger.verify_consistency(session) == []
