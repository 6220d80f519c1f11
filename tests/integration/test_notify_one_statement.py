"""On PostgreSQL a paid notify in the common case credits in one statement (one round trip).

It must write exactly what the general path writes, and step aside whenever anything differs
from the common case, leaving the decision to the general path.
"""
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from app.adapters.alipay.sandbox.notify_builder import encode_form

from app.adapters.db.models import Account, AlipayNotification, LedgerEntry, LedgerTransaction, TopupOrder
from app.services import ledger, topups
from tests.integration.test_topups import account, account_token, cash, create_topup, paid_notify, post_notify  # noqa: F401

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(pg_url):
    # The one-statement credit exists on PostgreSQL only: these tests run there alone.
    return pg_url


@pytest.fixture
def one_statement(monkeypatch):
    """Record what each one-statement attempt returned (True: it credited)."""
    results = []
    original = topups._credit_in_one_statement

    def spy(db, values):
        results.append(original(db, values))
        return results[-1]

    monkeypatch.setattr(topups, "_credit_in_one_statement", spy)
    return results


def written(wallet, order):
    """What crediting ``order`` wrote, with its own numbers replaced by placeholders."""
    number, account_id = order["out_trade_no"], order["account_id"]

    def plain(row, *drop):
        values = {c.name: getattr(row, c.name) for c in row.__table__.columns if c.name not in ("id", *drop)}
        return {k: (v.replace(number, "<no>").replace(account_id, "<acc>") if isinstance(v, str) else v)
                for k, v in values.items()}

    with wallet.db.sessions() as session:
        txn = session.execute(select(LedgerTransaction).where(LedgerTransaction.reference == number)).scalar_one()
        entries = session.execute(select(LedgerEntry).where(LedgerEntry.transaction_id == txn.id)).scalars().all()
        notify = session.execute(select(AlipayNotification).where(AlipayNotification.out_trade_no == number)).scalar_one()
        return {
            "transaction": plain(txn),
            "entries": [plain(e, "transaction_id") for e in entries],
            "order": plain(session.get(TopupOrder, number), "qr_code", "created_at", "expires_at"),
            "notification": plain(notify, "raw_body", "notify_id"),
            "account": plain(session.get(Account, account_id), "name", "remittance_code", "created_at"),
        }


def test_common_case_credits_in_one_statement_with_the_rows_of_the_general_path(
    client, wallet, new_account, token_for, sandbox, alipay_http, one_statement, monkeypatch
):
    first, second = new_account("First"), new_account("Second")
    orders = []
    for acc in (first, second):
        order = create_topup(client, acc, token_for("account", acc["id"]))
        orders.append({**order, "account_id": acc["id"]})

    assert post_notify(client, paid_notify(wallet, sandbox, orders[0])).get_data() == b"success"
    assert one_statement == [True]
    monkeypatch.setattr(topups, "_one_statement_credits", lambda db: False)
    assert post_notify(client, paid_notify(wallet, sandbox, orders[1])).get_data() == b"success"
    assert one_statement == [True]  # the second went the general way

    quick, general = written(wallet, orders[0]), written(wallet, orders[1])
    assert quick == general
    assert quick["entries"] == [
        {"idempotency_key": "alipay:<no>/0:cash", "account_id": "<acc>", "bucket": "cash", "unit_id": None,
         "amount_fen": 10000, "balance_after_fen": 10000, "created_at": quick["transaction"]["created_at"]}
    ]
    assert quick["order"]["status"] == "paid" and quick["order"]["credited_by"] == "notify"
    assert quick["notification"]["outcome"] == "credited" and not quick["notification"]["needs_review"]
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == [] and ledger.verify_references(session) == []


def test_a_second_notify_for_the_order_finds_nothing_to_do_and_is_a_duplicate(
    client, wallet, account, account_token, sandbox, alipay_http, one_statement
):
    order = create_topup(client, account, account_token)
    notify = paid_notify(wallet, sandbox, order)
    assert post_notify(client, notify).get_data() == b"success"
    assert post_notify(client, notify).get_data() == b"success"
    assert one_statement == [True, False]
    assert cash(wallet, account["id"]) == 10000
    with wallet.db.sessions() as session:
        outcomes = session.execute(select(AlipayNotification.outcome).order_by(AlipayNotification.id)).scalars().all()
    assert outcomes == ["credited", "duplicate"]


def test_an_account_in_arrears_is_left_to_the_general_path(
    client, wallet, account, account_token, sandbox, alipay_http, one_statement
):
    with wallet.db.transaction() as session:
        acc = ledger.lock_account(session, account["id"])
        ledger.record(session, acc, key="bill:x", kind="bill", now=wallet.clock.now(),
                      postings=[ledger.Posting("arrears", 3000)])
    order = create_topup(client, account, account_token)
    assert post_notify(client, paid_notify(wallet, sandbox, order)).get_data() == b"success"
    assert one_statement == [False]
    with wallet.db.sessions() as session:
        acc = session.get(Account, account["id"])
        assert (acc.cash_fen, acc.arrears_fen, acc.invoiceable_fen) == (7000, 0, 3000)


def test_an_amount_that_differs_writes_nothing_and_is_refused_by_the_general_path(
    client, wallet, account, account_token, sandbox, alipay_http, one_statement
):
    order = create_topup(client, account, account_token)
    response = post_notify(client, paid_notify(wallet, sandbox, order, total_amount="99.99"))
    assert response.get_data() != b"success"
    assert one_statement == [False]
    assert cash(wallet, account["id"]) == 0
    with wallet.db.sessions() as session:
        [row] = session.execute(select(AlipayNotification)).scalars().all()
        assert row.outcome == "rejected_amount"
        assert session.execute(select(LedgerTransaction)).first() is None


def test_statements_go_to_the_server_with_numbered_placeholders():
    sql, names = topups._positional(
        "SELECT %(a)s, %(b_1)s WHERE x = %(a)s AND y LIKE 'p%%' AND z = %(weird name)s"
    )
    assert sql == "SELECT $1, $2 WHERE x = $1 AND y LIKE 'p%' AND z = $3"
    assert names == ("a", "b_1", "weird name")


def test_the_credit_statement_compiles_to_positional_sql_with_every_parameter_named(wallet):
    from app.services.topups import _CREDIT_UNLESS_ANYTHING_DIFFERS, _positional

    compiled = _CREDIT_UNLESS_ANYTHING_DIFFERS.compile(dialect=wallet.db.engine.dialect)
    sql, names = _positional(compiled.string)
    assert "%(" not in sql and "%%" not in sql
    assert set(names) == set(compiled.params)
    assert f"${len(names)}" in sql and f"${len(names) + 1}" not in sql


def test_the_raw_body_and_the_payment_time_are_stored_exactly(
    client, wallet, account, account_token, sandbox, alipay_http, one_statement
):
    order = create_topup(client, account, account_token)
    body = encode_form(paid_notify(wallet, sandbox, order, gmt_payment="2026-11-26 12:04:59"), "utf-8")
    response = client.post("/alipay/notify", data=body,
                           content_type="application/x-www-form-urlencoded; charset=utf-8")
    assert response.get_data() == b"success" and one_statement == [True]
    with wallet.db.sessions() as session:
        row = session.execute(select(AlipayNotification)).scalar_one()
        paid_at = session.get(TopupOrder, order["out_trade_no"]).paid_at
    assert bytes(row.raw_body) == body
    # Alipay's times are Beijing time (UTC+8): the same instant, whatever zone it travelled in.
    assert paid_at == datetime(2026, 11, 26, 4, 4, 59, tzinfo=timezone.utc)


def test_a_naive_datetime_is_refused_before_anything_reaches_the_server(wallet):
    values = {
        "p_received_at": datetime(2026, 11, 26, 12, 0),  # no zone
        "p_raw_body": b"x", "p_charset": "utf-8", "p_notify_id": "n", "p_out_trade_no": "T-none",
        "p_trade_status": "TRADE_SUCCESS", "p_verified": True, "p_amount": 1, "p_key": "k",
        "p_entry_key": "k/0:cash", "p_memo": "", "p_now": datetime.now(timezone.utc),
        "p_trade_no": None, "p_paid_at": datetime.now(timezone.utc),
    }
    with pytest.raises(ValueError, match="naive"):
        topups._credit_in_one_statement(wallet.db, values)
    with wallet.db.sessions() as session:
        assert session.execute(select(AlipayNotification)).first() is None
