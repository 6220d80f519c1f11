"""The settlement hot path writes the same ledger rows as ``ledger.record``."""
from datetime import timedelta

from sqlalchemy import select

from app.adapters.db.fastpath import fast_transaction
from app.adapters.db.models import Account, Coupon, LedgerEntry, LedgerTransaction
from app.services import ledger
from app.services.bills import WRITE_BACK
from app.services.ledger import Posting
from app.services.ledger_rows import Movement
from app.services.locks import LockedUnit, lock_account
from app.services.units import grant_coupon
from tests.integration.wallet_helpers import top_up


def _setup(wallet, new_account):
    account = new_account()
    top_up(wallet, account["id"], 50_00, f"t-{account['id']}")
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        coupon = grant_coupon(session, lock_account(session, account["id"]), kind="regular",
                              face_value_fen=20_00, valid_from=now, expires_at=now + timedelta(days=9),
                              origin="allocation", now=now)
    return account["id"], coupon.id


def _entries(wallet, key):
    with wallet.db.sessions() as session:
        txn = session.execute(select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)).scalar_one()
        rows = session.execute(select(LedgerEntry).where(LedgerEntry.transaction_id == txn.id)
                               .order_by(LedgerEntry.id)).scalars()
        return (txn.kind, txn.reference), [(e.idempotency_key.split("/", 1)[1].split(":")[0], e.bucket,
                                           e.amount_fen, e.balance_after_fen) for e in rows]


def test_movement_rows_equal_what_ledger_record_writes(wallet, new_account):
    a_id, a_coupon = _setup(wallet, new_account)
    b_id, b_coupon = _setup(wallet, new_account)
    now = wallet.clock.now()
    with wallet.db.transaction() as session:
        account = ledger.lock_account(session, a_id)
        coupon = session.get(Coupon, a_coupon)
        ledger.record(session, account, key="same-a", kind="bill", reference="r", now=now, postings=[
            Posting("coupon", -5_00, coupon), Posting("cash", -10_00), Posting("invoiceable", 10_00),
            Posting("arrears", 0), Posting("arrears", 7_00)])
    with wallet.db.sessions() as session:
        account = session.get(Account, b_id)
        balances = {"cash": account.cash_fen, "arrears": account.arrears_fen, "invoiceable": account.invoiceable_fen}
        coupon = session.get(Coupon, b_coupon)
        unit = LockedUnit("coupon", "regular_coupon", coupon.id, coupon.balance_fen, coupon.valid_from,
                          coupon.expires_at, coupon.created_at)
    movement = Movement(key="same-b", account_id=b_id, kind="bill", reference="r", now=now, balances=balances)
    for bucket, fen, target in [("coupon", -5_00, unit), ("cash", -10_00, None), ("invoiceable", 10_00, None),
                                ("arrears", 0, None), ("arrears", 7_00, None)]:
        movement.post(bucket, fen, target)
    with fast_transaction(wallet.db) as tx:
        movement.write(tx)
        tx.write(WRITE_BACK["coupon"], [{"unit": unit.id, "balance": unit.balance_fen, "new_status": "active"}])
    assert _entries(wallet, "same-a") == _entries(wallet, "same-b")
    with wallet.db.sessions() as session:
        a, b = session.get(Account, a_id), session.get(Account, b_id)
        assert (a.cash_fen, a.arrears_fen, a.invoiceable_fen) == (b.cash_fen, b.arrears_fen, b.invoiceable_fen)
        assert ledger.verify(session) == []
