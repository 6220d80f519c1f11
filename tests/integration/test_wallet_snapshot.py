"""The wallet's figures are read from one snapshot while money moves between its balances."""
import pytest

from app.services import wallet as wallet_service
from app.services.accounts import create_account
from app.services.prepaid_cards import buy_prepaid_card
from tests.integration.wallet_helpers import once_after_statement, top_up


@pytest.mark.postgres
def test_a_card_bought_while_the_figures_are_read_is_counted_once(make_app, pg_url):
    app = make_app(pg_url)
    wallet = app.extensions["wallet"]
    account = create_account(wallet.db, wallet.clock, name="Busy", settlement="guance")
    top_up(wallet, account.id, 500_00, "t0")
    # A card is bought with cash just after the figures read the account's cash, before they
    # sum the cards: as a request of the customer's may at any moment.
    bought = once_after_statement(
        wallet.db.engine,
        lambda sql: "FROM accounts" in sql and "prepaid_cards" not in sql,
        lambda: buy_prepaid_card(wallet.db, wallet.clock, wallet.settings, account_id=account.id,
                                 amount_fen=200_00, actor="test"),
    )

    figures = wallet_service.wallet_figures(wallet.db, account.id, wallet.clock.now())
    assert bought
    assert (figures.cash_fen, figures.prepaid_cards_fen) == (500_00, 0)  # as before the purchase
    after = wallet_service.wallet_figures(wallet.db, account.id, wallet.clock.now())
    assert (after.cash_fen, after.prepaid_cards_fen) == (300_00, 200_00)
