"""Helpers for the wallet-rules tests: set up accounts, units and bills over the API."""
from __future__ import annotations

import threading

from sqlalchemy import event

from app.services import ledger
from tests.conftest import bearer

NEXT_YEAR = "2027-11-26T04:00:00+00:00"


def add_workspace(client, admin_token, account_id, workspace_id):
    response = client.post(f"/api/v1/accounts/{account_id}/workspaces",
                           json={"workspace_id": workspace_id}, headers=bearer(admin_token))
    assert response.status_code == 201, response.get_data(as_text=True)


def give_coupon(client, admin_token, account_id, amount, *, expires_at=NEXT_YEAR, valid_from=None):
    body = {"kind": "regular", "amount": amount, "expires_at": expires_at, "account_id": account_id}
    if valid_from:
        body["valid_from"] = valid_from
    response = client.post("/api/v1/coupons", json=body, headers=bearer(admin_token))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def give_card(client, admin_token, account_id, amount, *, expires_at=NEXT_YEAR):
    response = client.post("/api/v1/prepaid-cards",
                           json={"account_id": account_id, "amount": amount, "expires_at": expires_at},
                           headers=bearer(admin_token))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def top_up(wallet, account_id, fen, key):
    with wallet.db.transaction() as session:
        account = ledger.lock_account(session, account_id)
        return ledger.credit_topup(session, account, amount_fen=fen, key=key, kind="topup",
                                   now=wallet.clock.now())


def post_bill(client, admin_token, bill_id, workspace_id, amount, product="general"):
    return client.post("/api/v1/bills", json={"bill_id": bill_id, "workspace_id": workspace_id,
                                              "product": product, "amount": amount},
                       headers=bearer(admin_token))


def wallet_of(client, token, account_id):
    response = client.get(f"/api/v1/accounts/{account_id}/wallet", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def assert_ledger_clean(wallet):
    with wallet.db.sessions() as session:
        assert ledger.verify(session) == []
        assert ledger.verify_references(session) == []


def drawn(response):
    """Return a bill response's allocations as (source, amount) pairs."""
    return [(a["source"], a["amount"]) for a in response.get_json()["allocations"]]


def at_once(count, work):
    """Run ``work(i)`` in ``count`` threads released together; return results or exceptions."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(index):
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread met
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    return results


def once_after_statement(engine, matches, action) -> list:
    """Run ``action()`` once, just after the first statement on ``engine`` for which
    ``matches(sql)`` is true: another transaction committing between two reads of one check.
    Return a list that holds ``True`` once it has run."""
    done: list = []

    @event.listens_for(engine, "after_cursor_execute")
    def _meanwhile(_conn, _cursor, statement, _params, _context, _executemany):
        if not done and matches(statement):
            done.append(True)
            action()

    return done
