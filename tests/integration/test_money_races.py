"""Money movements fired truly at once on PostgreSQL: each happens once, balances stay right.

Every test releases its threads together with a barrier; each thread has its own test client
(or calls the services directly) and so its own database connection. The assertions are on
the final state (statuses, ledger keys, balances, ``ledger.verify``), never on timing.
"""
from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pytest
from sqlalchemy import case, func, select, update

from app.adapters.db.models import (
    Account,
    Bill,
    Coupon,
    CouponCode,
    LedgerEntry,
    LedgerTransaction,
    PrepaidCard,
    StatementLine,
    TopupOrder,
)
from app.adapters.alipay.sandbox.notify_builder import build_signed_notify, encode_form
from app.services.coupons import issue_codes
from app.services.reconcile import reconcile
from app.services.topups import poll_pending_topups
from tests.conftest import bearer
from tests.integration.statement_helpers import csv_file, row, upload
from tests.integration.wallet_helpers import at_once as run_at_once
from tests.integration.wallet_helpers import (
    add_workspace,
    assert_ledger_clean,
    give_card,
    give_coupon,
    post_bill,
    top_up,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(pg_url):
    """Every test here runs on PostgreSQL only: SQLite serialises writers at BEGIN."""
    return pg_url


def at_once(count, work):
    """``wallet_helpers.at_once``, where no racing call may fail outright."""
    results = run_at_once(count, work)
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def answered(response):
    """A response as plain values, read inside its thread."""
    return response.status_code, response.get_json(silent=True), response.headers.get("Idempotent-Replayed")


def balances(wallet, account_id):
    with wallet.db.sessions() as session:
        account = session.get(Account, account_id)
        return account.cash_fen, account.arrears_fen, account.invoiceable_fen


def ledger_count(wallet, *where):
    with wallet.db.sessions() as session:
        return session.scalar(select(func.count()).select_from(LedgerTransaction).where(*where))


def fen(amount: str) -> int:
    whole, frac = amount.split(".")
    return int(whole) * 100 + int(frac)


def paid_notify(wallet, sandbox, order):
    """A TRADE_SUCCESS notify for ``order``, signed with the sandbox's Alipay key."""
    return build_signed_notify(
        sandbox.alipay_private_key,
        notify_time="2026-11-26 12:05:00",
        notify_type="trade_status_sync",
        notify_id="n" + order["out_trade_no"],
        app_id=wallet.settings.alipay_app_id,
        charset="utf-8",
        version="1.0",
        trade_no="2026112622001400001",
        out_trade_no=order["out_trade_no"],
        buyer_id="2088102177846880",
        seller_id=sandbox.seller_id,
        trade_status="TRADE_SUCCESS",
        total_amount=order["amount"],
        receipt_amount=order["amount"],
        subject="Wallet top-up",
        gmt_payment="2026-11-26 12:04:59",
    )


# -- bills ------------------------------------------------------------------------------------


def test_one_bill_id_posted_at_once_with_different_bodies_settles_one_of_them(app, client, admin_token, new_account,
                                                                              wallet):
    accounts = [new_account(f"A{i}") for i in range(2)]
    for account in accounts:
        add_workspace(client, admin_token, account["id"], f"ws-{account['id']}")
        top_up(wallet, account["id"], 1000_00, f"seed-{account['id']}")
    for round_ in range(4):
        bill_id = f"clash-{round_}"
        # Eight bodies: two workspaces (two accounts), four amounts each.
        bodies = [(f"ws-{accounts[i % 2]['id']}", f"{i + 1}.00") for i in range(8)]
        results = at_once(8, lambda i: answered(
            post_bill(app.test_client(), admin_token, bill_id, bodies[i][0], bodies[i][1])))
        statuses = Counter(status for status, _, _ in results)
        assert statuses == {201: 1, 409: 7}, results
        [winner] = [i for i, (status, _, _) in enumerate(results) if status == 201]
        assert all(body["code"] == "bill_conflict" for status, body, _ in results if status == 409)
        with wallet.db.sessions() as session:
            bill = session.get(Bill, bill_id)
            assert (bill.workspace_id, bill.amount_fen) == (bodies[winner][0], fen(bodies[winner][1]))
        assert ledger_count(wallet, LedgerTransaction.idempotency_key == f"bill:{bill_id}") == 1
        # The winner's body is replayed from now on; every other body still conflicts.
        replay = post_bill(client, admin_token, bill_id, *bodies[winner])
        assert (replay.status_code, replay.get_json()) == (200, results[winner][1])
    spent = sum(1000_00 - balances(wallet, a["id"])[0] for a in accounts)
    with wallet.db.sessions() as session:
        assert spent == session.scalar(select(func.sum(Bill.amount_fen)))
    assert_ledger_clean(wallet)


def test_the_same_bill_posted_eight_times_at_once_is_201_once_and_200_after(app, client, admin_token, new_account,
                                                                            wallet):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-same")
    top_up(wallet, account["id"], 50_00, "seed")
    results = at_once(8, lambda i: answered(post_bill(app.test_client(), admin_token, "same", "ws-same", "30.00")))
    assert sorted(status for status, _, _ in results) == [200] * 7 + [201]
    assert len({str(body) for _, body, _ in results}) == 1
    assert balances(wallet, account["id"]) == (20_00, 0, 30_00)
    assert_ledger_clean(wallet)


def test_bills_racing_for_the_last_units_and_cash_draw_them_in_order_and_never_overdraw(
        app, client, admin_token, new_account, wallet):
    """Per account: a regular coupon, a prepaid card and cash of 10.00 each, three 10.00 bills.

    Whatever order the bills lock the account in, the first takes the coupon, the next the
    card, the last the cash: each source exactly once, nothing owed, no balance below zero.
    Two more sms bills then race for nothing left and both go to arrears.
    """
    accounts = [new_account(f"H{i}") for i in range(4)]
    for account in accounts:
        add_workspace(client, admin_token, account["id"], f"ws-{account['id']}")
        give_coupon(client, admin_token, account["id"], "10.00")
        give_card(client, admin_token, account["id"], "10.00")
        top_up(wallet, account["id"], 10_00, f"seed-{account['id']}")
    jobs = [(a["id"], n) for a in accounts for n in range(3)]
    results = at_once(len(jobs), lambda i: answered(post_bill(
        app.test_client(), admin_token, f"b-{jobs[i][0]}-{jobs[i][1]}", f"ws-{jobs[i][0]}", "10.00")))
    for account in accounts:
        drawn = sorted(
            tuple((a["source"], a["amount"]) for a in body["allocations"])
            for (status, body, _), (account_id, _) in zip(results, jobs)
            if account_id == account["id"] and status == 201
        )
        assert drawn == [(("cash", "10.00"),), (("prepaid_card", "10.00"),), (("regular_coupon", "10.00"),)]
        assert balances(wallet, account["id"]) == (0, 0, 10_00)
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.sum(Coupon.balance_fen))) == 0
        assert session.scalar(select(func.sum(PrepaidCard.balance_fen))) == 0
        assert session.scalar(select(func.min(LedgerEntry.balance_after_fen))) >= 0
    more = at_once(8, lambda i: answered(post_bill(
        app.test_client(), admin_token, f"late-{i}", f"ws-{accounts[i % 4]['id']}", "5.00", product="sms")))
    assert all(body["allocations"] == [{"source": "arrears", "id": None, "amount": "5.00"}] for _, body, _ in more)
    assert all(balances(wallet, a["id"]) == (0, 10_00, 10_00) for a in accounts)
    assert_ledger_clean(wallet)


# -- prepaid card purchases -------------------------------------------------------------------


def test_card_purchases_over_http_at_once_spend_the_cash_once_and_earn_one_bonus_each(
        app, new_account, token_for, wallet):
    account = new_account()
    token = token_for("account", account["id"])
    top_up(wallet, account["id"], 25_000_00, "seed")
    results = at_once(6, lambda i: answered(app.test_client().post(
        f"/api/v1/accounts/{account['id']}/prepaid-cards", json={"amount": "10000.00"}, headers=bearer(token))))
    assert Counter(status for status, _, _ in results) == {201: 2, 409: 4}, results
    assert all(body["bonus_coupon"]["face_value"] == "1000.00" for status, body, _ in results if status == 201)
    assert balances(wallet, account["id"]) == (5_000_00, 0, 20_000_00)
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PrepaidCard)) == 2
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.kind == "discount")) == 2
    assert_ledger_clean(wallet)


# -- Idempotency-Key --------------------------------------------------------------------------


def test_one_idempotency_key_used_at_once_buys_one_card(app, new_account, token_for, wallet):
    account = new_account()
    token = token_for("account", account["id"])
    top_up(wallet, account["id"], 1000_00, "seed")
    for round_ in range(3):
        headers = {**bearer(token), "Idempotency-Key": f"buy-{round_}"}
        results = at_once(8, lambda i: answered(app.test_client().post(
            f"/api/v1/accounts/{account['id']}/prepaid-cards", json={"amount": "100.00"}, headers=headers)))
        [first] = [r for r in results if r[0] == 201 and r[2] is None]
        for status, body, replayed in results:
            # The others saw the key still in progress (409), or the stored answer replayed.
            if status == 409:
                assert body["code"] == "idempotency_in_progress"
            elif replayed:
                assert (status, body) == (201, first[1])
            else:
                assert body == first[1]
    assert balances(wallet, account["id"]) == (700_00, 0, 300_00)
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PrepaidCard)) == 3
    assert_ledger_clean(wallet)


def test_one_idempotency_key_used_at_once_with_different_bodies_has_one_effect(app, new_account, token_for,
                                                                               admin_token, client, wallet):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-k")
    top_up(wallet, account["id"], 1000_00, "seed")
    headers = {**bearer(admin_token), "Idempotency-Key": "one-key"}
    results = at_once(8, lambda i: answered(app.test_client().post(
        "/api/v1/bills", json={"bill_id": f"k-{i}", "workspace_id": "ws-k", "product": "sms", "amount": "1.00"},
        headers=headers)))
    assert [status for status, _, _ in results].count(201) == 1, results
    assert all((status, body["code"]) in {(409, "idempotency_in_progress"), (422, "idempotency_key_reused")}
               for status, body, _ in results if status != 201), results
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Bill)) == 1
    assert balances(wallet, account["id"])[0] == 999_00
    assert_ledger_clean(wallet)


# -- activation codes -------------------------------------------------------------------------


def test_one_activation_code_redeemed_at_once_by_eight_accounts_grants_one_coupon(app, new_account, token_for,
                                                                                  wallet):
    accounts = [new_account(f"R{i}") for i in range(8)]
    tokens = [token_for("account", a["id"]) for a in accounts]
    for round_ in range(3):
        [code] = issue_codes(wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, count=1,
                             face_value_fen=50_00, valid_from=None, expires_at=wallet.clock.now().replace(
                                 year=2027), actor="test")
        results = at_once(8, lambda i: answered(app.test_client().post(
            f"/api/v1/accounts/{accounts[i]['id']}/coupons/activate", json={"code": code},
            headers=bearer(tokens[i]))))
        assert Counter(status for status, _, _ in results) == {201: 1, 422: 7}, results
        assert {body["code"] for status, body, _ in results if status == 422} == {"activation_code_used"}
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 3
        redeemed = session.execute(select(CouponCode.redeemed_account_id, CouponCode.coupon_id)).all()
        owners = dict(session.execute(select(Coupon.id, Coupon.account_id)).all())
        assert all(owners[coupon_id] == account_id for account_id, coupon_id in redeemed)
    assert_ledger_clean(wallet)


def test_one_code_redeemed_at_once_by_one_account_with_many_tokens_grants_one_coupon(app, new_account, token_for,
                                                                                     wallet):
    account = new_account()
    tokens = [token_for("account", account["id"]) for _ in range(6)]
    [code] = issue_codes(wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, count=1,
                         face_value_fen=20_00, valid_from=None, expires_at=wallet.clock.now().replace(year=2027),
                         actor="test")
    results = at_once(6, lambda i: answered(app.test_client().post(
        f"/api/v1/accounts/{account['id']}/coupons/activate", json={"code": code}, headers=bearer(tokens[i]))))
    assert Counter(status for status, _, _ in results) == {201: 1, 422: 5}, results
    assert ledger_count(wallet, LedgerTransaction.kind == "coupon_grant") == 1
    assert_ledger_clean(wallet)


# -- statement lines: reconciler runs, manual match, undo -------------------------------------

LATE_CODES = ["K7M2P4Q9R", "T3W8X5Y6Z"]


def unmatched_lines(app, client, new_account, wallet, per_account: int):
    """Lines for codes no account holds yet (so they wait unmatched), then the accounts get them."""
    finance = _finance_token(wallet)
    rows = [row(f"汇款 {code}", f"{n + 1}.00", tid=f"T{k}-{n}")
            for k, code in enumerate(LATE_CODES) for n in range(per_account)]
    assert upload(client, finance, csv_file(*rows)).status_code == 201
    accounts = [new_account(f"Late{k}") for k in range(len(LATE_CODES))]
    with wallet.db.transaction() as session:
        for account, code in zip(accounts, LATE_CODES):
            session.execute(update(Account).where(Account.id == account["id"]).values(remittance_code=code))
        ids = session.execute(select(StatementLine.id).order_by(StatementLine.id)).scalars().all()
    return finance, accounts, ids


def _finance_token(wallet):
    from app.services.tokens import create_token

    return create_token(wallet.db, wallet.clock, role="finance")


def bank_credits_by_line(wallet):
    """Net amount the ledger credited per statement line id: credits minus reversals.

    A credit adds cash or pays arrears off, a reversal takes cash back or adds arrears, so the
    net of a line is its cash entries minus its arrears entries.
    """
    signed = case((LedgerEntry.bucket == "cash", LedgerEntry.amount_fen), else_=-LedgerEntry.amount_fen)
    with wallet.db.sessions() as session:
        rows = session.execute(
            select(LedgerTransaction.reference, func.sum(signed))
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(LedgerTransaction.kind.in_(("topup_bank", "topup_bank_reversal")),
                   LedgerEntry.bucket.in_(("cash", "arrears")))
            .group_by(LedgerTransaction.reference)
        ).all()
    return {int(reference.split(":")[1]): int(total) for reference, total in rows}


def test_reconciler_runs_at_once_credit_each_line_once(app, client, new_account, wallet):
    finance, accounts, ids = unmatched_lines(app, client, new_account, wallet, per_account=15)
    results = at_once(4, lambda i: reconcile(wallet.db, wallet.clock))
    assert sum(r["matched"] for r in results) == len(ids)
    with wallet.db.sessions() as session:
        lines = session.execute(select(StatementLine)).scalars().all()
    assert {line.status for line in lines} == {"matched"} and {line.credits for line in lines} == {1}
    assert ledger_count(wallet, LedgerTransaction.kind == "topup_bank") == len(ids)
    expected = sum(range(1, 16)) * 100
    assert [balances(wallet, a["id"])[0] for a in accounts] == [expected, expected]
    assert_ledger_clean(wallet)


def test_manual_matches_racing_the_reconciler_credit_each_line_once(app, client, new_account, wallet):
    finance, accounts, ids = unmatched_lines(app, client, new_account, wallet, per_account=5)
    other = new_account("Other")
    # Finance matches every line by hand to another account while two reconciler runs go.
    work = [("reconcile", None)] * 2 + [("match", line_id) for line_id in ids]

    def act(i):
        kind, line_id = work[i]
        if kind == "reconcile":
            return reconcile(wallet.db, wallet.clock)
        return answered(app.test_client().post(
            f"/api/v1/statement-lines/{line_id}/match", json={"account_id": other["id"], "reason": "by hand"},
            headers=bearer(finance)))

    results = at_once(len(work), act)
    by_hand = {line_id: r for (kind, line_id), r in zip(work, results) if kind == "match"}
    automatic = sum(r["matched"] for r in results[:2])
    assert all(r[0] in (200, 409) for r in by_hand.values()), by_hand
    assert all(r[1]["code"] == "line_already_matched" for r in by_hand.values() if r[0] == 409)
    assert automatic + sum(r[0] == 200 for r in by_hand.values()) == len(ids)
    with wallet.db.sessions() as session:
        lines = {line.id: line for line in session.execute(select(StatementLine)).scalars()}
    credited = bank_credits_by_line(wallet)
    for line_id in ids:
        line = lines[line_id]
        assert (line.status, line.credits) == ("matched", 1)
        assert line.account_id == (other["id"] if by_hand[line_id][0] == 200 else line.account_id)
        assert credited[line_id] == line.amount_fen
    total = sum(lines[i].amount_fen for i in ids)
    assert sum(balances(wallet, a["id"])[0] for a in [*accounts, other]) == total
    assert_ledger_clean(wallet)


def test_undo_racing_new_matches_leaves_each_line_credited_as_its_status_says(app, client, new_account, wallet):
    finance = _finance_token(wallet)
    first, second = new_account("First"), new_account("Second")
    rows = [row(first["remittance_code"], f"{n + 10}.00", tid=f"U{n}") for n in range(4)]
    assert upload(client, finance, csv_file(*rows)).status_code == 201
    with wallet.db.sessions() as session:
        ids = session.execute(select(StatementLine.id).order_by(StatementLine.id)).scalars().all()
    for round_ in range(3):
        # Per line: two undos and two matches to the second account, all at once.
        work = [(line_id, kind) for line_id in ids for kind in ("unmatch", "unmatch", "match", "match")]

        def act(i):
            line_id, kind = work[i]
            body = {"reason": f"round {round_}"}
            if kind == "match":
                body["account_id"] = second["id"]
            return answered(app.test_client().post(
                f"/api/v1/statement-lines/{line_id}/{kind}", json=body, headers=bearer(finance)))

        results = at_once(len(work), act)
        assert all(status in (200, 409) for status, _, _ in results), results
        with wallet.db.sessions() as session:
            lines = {line.id: line for line in session.execute(select(StatementLine)).scalars()}
        credited = bank_credits_by_line(wallet)
        for line_id in ids:
            line = lines[line_id]
            assert credited[line_id] == (line.amount_fen if line.status == "matched" else 0), (line_id, round_)
        assert_ledger_clean(wallet)
        # Reset to matched for the next round, whichever way it ended.
        for line_id in ids:
            if lines[line_id].status != "matched":
                assert client.post(f"/api/v1/statement-lines/{line_id}/match",
                                   json={"account_id": first["id"], "reason": "reset"},
                                   headers=bearer(finance)).status_code == 200
    total = sum(fen(f"{n + 10}.00") for n in range(4))
    assert sum(balances(wallet, a["id"])[0] - balances(wallet, a["id"])[1] for a in (first, second)) == total
    assert_ledger_clean(wallet)


# -- Alipay: query credit racing the notify ---------------------------------------------------


def test_status_queries_polls_and_notifies_at_once_credit_an_order_once(app, client, new_account, token_for, wallet,
                                                                        alipay_http, sandbox, admin_token):

    payer, owing = new_account("Payer"), new_account("Owing")
    # One account owes money: its notifies take the general path, not the one-statement one.
    add_workspace(client, admin_token, owing["id"], "ws-owing")
    assert post_bill(client, admin_token, "debt", "ws-owing", "30.00").status_code == 201
    tokens = {a["id"]: token_for("account", a["id"]) for a in (payer, owing)}
    orders = []
    for account in (payer, owing, payer, owing):
        response = client.post(f"/api/v1/accounts/{account['id']}/topups", json={"amount": "100.00",
                               "method": "alipay"}, headers=bearer(tokens[account["id"]]))
        assert response.status_code == 201, response.get_data(as_text=True)
        order = response.get_json()
        order["account_id"] = account["id"]
        token = urlsplit(order["qr_code"]).path.rstrip("/").rsplit("/", 1)[-1]
        assert sandbox.pay(token, charset="utf-8")[1]  # paid at Alipay; no notify sent yet
        orders.append(order)
    wallet.clock.advance(minutes=2)  # old enough for the poll job to query
    notifies = [encode_form(paid_notify(wallet, sandbox, order)) for order in orders]
    # Per order: a status read (which queries Alipay), three notifies; plus two poll job runs.
    work = [("poll", None)] * 2 + [(kind, n) for n in range(len(orders))
                                   for kind in ("status", "notify", "notify", "notify")]

    def act(i):
        kind, n = work[i]
        if kind == "poll":
            return poll_pending_topups(wallet.db, wallet.clock, wallet.gateway)
        own = app.test_client()
        if kind == "status":
            return answered(own.get(f"/api/v1/topups/{orders[n]['out_trade_no']}",
                                    headers=bearer(tokens[orders[n]["account_id"]])))
        response = own.post("/alipay/notify", data=notifies[n], content_type="application/x-www-form-urlencoded")
        return response.get_data()

    results = at_once(len(work), act)
    assert [r for (kind, _), r in zip(work, results) if kind == "notify"] == [b"success"] * 3 * len(orders)
    with wallet.db.sessions() as session:
        assert {o.status for o in session.execute(select(TopupOrder)).scalars()} == {"paid"}
    for order in orders:
        assert ledger_count(wallet, LedgerTransaction.reference == order["out_trade_no"]) == 1
    assert balances(wallet, payer["id"]) == (200_00, 0, 0)
    assert balances(wallet, owing["id"]) == (170_00, 0, 30_00)
    assert_ledger_clean(wallet)



# -- everything at once on one account --------------------------------------------------------


def test_every_kind_of_movement_at_once_on_one_account_keeps_the_ledger_exact(
        app, client, new_account, token_for, wallet, alipay_http, sandbox, admin_token):
    """Bills, Alipay notifies and queries, bank credits by the reconciler, card purchases,
    coupon activations and an expiry run, all on one account at the same moment: the cached
    balances equal the entries, and the account holds exactly what came in minus what went out.
    """
    from app.services.expiry import expire_credits
    account = new_account("Busy")
    account_id = account["id"]
    token = token_for("account", account_id)
    add_workspace(client, admin_token, account_id, "ws-busy")
    top_up(wallet, account_id, 300_00, "seed")
    soon = wallet.clock.now().replace(hour=wallet.clock.now().hour + 1).isoformat()
    give_coupon(client, admin_token, account_id, "7.00", expires_at=soon)  # due when the race starts
    give_coupon(client, admin_token, account_id, "20.00")
    finance = _finance_token(wallet)
    assert upload(client, finance, csv_file(
        *(row(f"汇款 {LATE_CODES[0]}", "10.00", tid=f"L{n}") for n in range(6)))).status_code == 201
    with wallet.db.transaction() as session:
        session.execute(update(Account).where(Account.id == account_id).values(remittance_code=LATE_CODES[0]))
    orders = []
    for _ in range(3):
        response = client.post(f"/api/v1/accounts/{account_id}/topups", json={"amount": "50.00", "method": "alipay"},
                               headers=bearer(token))
        order = response.get_json()
        assert sandbox.pay(urlsplit(order["qr_code"]).path.rstrip("/").rsplit("/", 1)[-1], charset="utf-8")[1]
        orders.append(order)
    codes = issue_codes(wallet.db, wallet.clock, secret_key=wallet.settings.secret_key, count=2,
                        face_value_fen=5_00, valid_from=None, expires_at=wallet.clock.now().replace(year=2027),
                        actor="test")
    wallet.clock.advance(hours=2)
    notifies = [encode_form(paid_notify(wallet, sandbox, order)) for order in orders]
    work = (
        [("bill", n) for n in range(12)] + [("notify", n) for n in range(3)] * 2 + [("status", n) for n in range(3)]
        + [("reconcile", 0), ("reconcile", 1), ("card", 0), ("card", 1), ("code", 0), ("code", 1), ("expire", 0)]
    )

    def act(i):
        kind, n = work[i]
        own = app.test_client()
        if kind == "bill":
            return answered(post_bill(own, admin_token, f"busy-{n}", "ws-busy", "45.00",
                                      product="general" if n % 2 else "sms"))
        if kind == "notify":
            return own.post("/alipay/notify", data=notifies[n], content_type="application/x-www-form-urlencoded").data
        if kind == "status":
            return answered(own.get(f"/api/v1/topups/{orders[n]['out_trade_no']}", headers=bearer(token)))
        if kind == "reconcile":
            return reconcile(wallet.db, wallet.clock)
        if kind == "card":
            return answered(own.post(f"/api/v1/accounts/{account_id}/prepaid-cards", json={"amount": "100.00"},
                                     headers=bearer(token)))
        if kind == "code":
            return answered(own.post(f"/api/v1/accounts/{account_id}/coupons/activate", json={"code": codes[n]},
                                     headers=bearer(token)))
        return expire_credits(wallet.db, wallet.clock)

    results = at_once(len(work), act)
    outcome = {kind: [r for (k, _), r in zip(work, results) if k == kind] for kind, _ in work}
    assert all(status == 201 for status, _, _ in outcome["bill"]), outcome["bill"]
    assert outcome["notify"] == [b"success"] * 6
    assert all(status == 201 for status, _, _ in outcome["code"])
    assert all(status in (201, 409) for status, _, _ in outcome["card"])
    assert sum(r["matched"] for r in outcome["reconcile"]) == 6
    assert outcome["expire"][0].forfeited_fen == 7_00
    assert_ledger_clean(wallet)
    came_in = 300_00 + 7_00 + 20_00 + 3 * 50_00 + 6 * 10_00 + 2 * 5_00
    went_out = 12 * 45_00 + 7_00
    cash, arrears, _ = balances(wallet, account_id)
    with wallet.db.sessions() as session:
        units = (session.scalar(select(func.sum(Coupon.balance_fen))) or 0) + (
            session.scalar(select(func.sum(PrepaidCard.balance_fen))) or 0)
        assert session.scalar(select(func.min(LedgerEntry.balance_after_fen))) >= 0
    assert not (cash and arrears)
    assert cash + units - arrears == came_in - went_out
    for order in orders:
        assert ledger_count(wallet, LedgerTransaction.reference == order["out_trade_no"]) == 1


# -- workspaces: who a bill is charged to ----------------------------------------------------


def test_one_workspace_attached_at_once_belongs_to_one_account(app, new_account, admin_token, wallet):
    accounts = [new_account(f"W{i}") for i in range(4)]
    for round_ in range(3):
        workspace = f"ws-race-{round_}"
        # Two requests per account: the same attachment twice, and a rival account's.
        results = at_once(8, lambda i: answered(app.test_client().post(
            f"/api/v1/accounts/{accounts[i % 4]['id']}/workspaces", json={"workspace_id": workspace},
            headers=bearer(admin_token))))
        assert all(status in (201, 409) for status, _, _ in results), results
        winners = {accounts[i % 4]["id"] for i, (status, _, _) in enumerate(results) if status == 201}
        assert len(winners) == 1, results
        assert all(body["code"] == "workspace_taken" for status, body, _ in results if status == 409)
        with wallet.db.sessions() as session:
            from app.adapters.db.models import Workspace

            assert session.get(Workspace, workspace).account_id in winners


def test_wrong_codes_from_one_token_for_many_accounts_at_once_are_limited_to_ten(app, new_account, admin_token,
                                                                                 wallet):
    accounts = [new_account(f"G{i}") for i in range(16)]
    results = at_once(16, lambda i: answered(app.test_client().post(
        f"/api/v1/accounts/{accounts[i]['id']}/coupons/activate", json={"code": f"WRONG{i}"},
        headers=bearer(admin_token))))
    assert Counter(body["code"] for _, body, _ in results) == {
        "activation_code_unknown": 10, "too_many_activation_attempts": 6}, results
