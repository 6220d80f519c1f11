"""The credits-expire job: units past their window are forfeited by ledger entries, once."""
import threading

from sqlalchemy import select

from app.adapters.db.models import Coupon, LedgerTransaction, PrepaidCard
from app.jobs import JOBS, run_job
from app.services.expiry import expire_credits
from tests.integration.wallet_helpers import (
    add_workspace,
    assert_ledger_clean,
    give_card,
    give_coupon,
    post_bill,
    wallet_of,
)

SOON = "2026-11-27T00:00:00+00:00"


def test_expiry_forfeits_what_is_left_by_ledger_entries(client, admin_token, new_account, wallet, clock):
    account = new_account()
    add_workspace(client, admin_token, account["id"], "ws-1")
    coupon = give_coupon(client, admin_token, account["id"], "10.00", expires_at=SOON)
    card = give_card(client, admin_token, account["id"], "20.00", expires_at=SOON)
    post_bill(client, admin_token, "b-1", "ws-1", "15.00")  # coupon 10.00, card 5.00
    clock.advance(days=1)
    assert run_job(wallet, "credits-expire") == "expired 0 coupon(s), 1 card(s), forfeited 1500 fen"
    with wallet.db.sessions() as session:
        keys = set(session.execute(select(LedgerTransaction.idempotency_key)
                                   .where(LedgerTransaction.kind == "expiry")).scalars())
        assert session.get(PrepaidCard, int(card["id"])).status == "expired"
        assert session.get(PrepaidCard, int(card["id"])).balance_fen == 0
        assert session.get(Coupon, int(coupon["id"])).status == "used_up"  # nothing left to forfeit
    assert keys == {f"expire:prepaid_card:{card['id']}"}
    assert wallet_of(client, admin_token, account["id"])["prepaid_cards"] == "0.00"
    assert_ledger_clean(wallet)


def test_expiry_run_again_forfeits_nothing_more(client, admin_token, new_account, wallet, clock):
    account = new_account()
    give_coupon(client, admin_token, account["id"], "10.00", expires_at=SOON)
    clock.advance(days=1)
    first, second = expire_credits(wallet.db, clock), expire_credits(wallet.db, clock)
    assert (first.coupons, first.forfeited_fen) == (1, 10_00)
    assert (second.coupons, second.forfeited_fen) == (0, 0)
    assert_ledger_clean(wallet)


def test_units_still_inside_their_window_are_left_alone(client, admin_token, new_account, wallet, clock):
    account = new_account()
    give_coupon(client, admin_token, account["id"], "10.00")
    give_card(client, admin_token, account["id"], "10.00", expires_at=SOON)
    assert expire_credits(wallet.db, clock).cards == 0
    clock.advance(hours=19, minutes=59)  # one minute before the card's end
    assert expire_credits(wallet.db, clock).cards == 0
    clock.advance(minutes=1)  # at expires_at the card is over
    summary = expire_credits(wallet.db, clock)
    assert (summary.coupons, summary.cards) == (0, 1)


def test_expiry_runs_started_at_once_forfeit_each_unit_once(client, admin_token, new_account, wallet, clock):
    for index in range(6):
        account = new_account(f"A{index}")
        give_coupon(client, admin_token, account["id"], "10.00", expires_at=SOON)
        give_card(client, admin_token, account["id"], "7.00", expires_at=SOON)
    clock.advance(days=1)
    barrier, results = threading.Barrier(2), []

    def run():
        barrier.wait()
        results.append(expire_credits(wallet.db, clock))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.coupons for r in results) == 6 and sum(r.cards for r in results) == 6
    assert sum(r.forfeited_fen for r in results) == 6 * 17_00
    with wallet.db.sessions() as session:
        assert len(session.execute(select(LedgerTransaction.id)
                                   .where(LedgerTransaction.kind == "expiry")).all()) == 12
    assert_ledger_clean(wallet)


def test_credits_expire_is_a_listed_job(app):
    assert "credits-expire" in JOBS
    listed = app.test_cli_runner().invoke(args=["jobs", "list"])
    assert "credits-expire" in listed.output


def test_ledger_verify_command_is_clean_after_every_kind_of_movement(app, client, admin_token, new_account,
                                                                      wallet, clock, token_for):
    from tests.conftest import bearer
    from tests.integration.wallet_helpers import top_up

    guance, cloud = new_account("G"), new_account("C", settlement="cloud")
    add_workspace(client, admin_token, guance["id"], "ws-g")
    add_workspace(client, admin_token, cloud["id"], "ws-c")
    give_coupon(client, admin_token, guance["id"], "10.00", expires_at=SOON)
    give_card(client, admin_token, cloud["id"], "10.00")
    top_up(wallet, guance["id"], 10_500_00, "t-g")
    bought = client.post(f"/api/v1/accounts/{guance['id']}/prepaid-cards", json={"amount": "10000.00"},
                         headers=bearer(token_for("account", guance["id"])))
    assert bought.get_json()["bonus_coupon"]["face_value"] == "1000.00"
    codes = client.post("/api/v1/coupons", json={"amount": "3.00", "expires_at": SOON, "count": 1},
                        headers=bearer(admin_token)).get_json()["codes"]
    assert client.post(f"/api/v1/accounts/{guance['id']}/coupons/activate", json={"code": codes[0]},
                       headers=bearer(admin_token)).status_code == 201
    for number, (workspace, product, amount) in enumerate([
            ("ws-g", "general", "1500.00"), ("ws-g", "sms", "9000.00"), ("ws-g", "general", "2000.00"),
            ("ws-c", "general", "25.00"), ("ws-c", "dial_testing", "5.00")]):
        assert post_bill(client, admin_token, f"b{number}", workspace, amount, product).status_code == 201
    top_up(wallet, guance["id"], 50_00, "t-g2")  # pays part of the arrears
    clock.advance(days=400)
    assert run_job(wallet, "credits-expire").startswith("expired")
    result = app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
