"""A key released by a failed request just as another request with it arrives is claimed again."""
from __future__ import annotations

import pytest
from sqlalchemy import delete, event, func, select

from app.adapters.db.models import Account, IdempotentRequest
from app.services.tokens import authenticate
from tests.conftest import bearer

pytestmark = pytest.mark.postgres


@pytest.fixture
def db_url(pg_url):
    return pg_url


def test_a_key_released_between_a_failed_claim_and_its_read_is_claimed_again(client, wallet, admin_token, clock):
    body = {"name": "Acme", "settlement": "guance"}
    headers = {**bearer(admin_token), "Idempotency-Key": "create-acme"}
    # A request with this key is running: its claim is in the table.
    with wallet.db.transaction() as session:
        session.add(IdempotentRequest(scope=_scope_of(wallet, admin_token), key="create-acme", method="POST",
                                      path="/api/v1/accounts", request_hash="", state="in_progress",
                                      created_at=clock.now()))

    fired = []

    def released(context):
        # That request fails and releases the key just as this one's claim is refused.
        if fired or "idempotent_requests" not in str(context.statement):
            return
        fired.append(context.original_exception)
        with wallet.db.engine.connect() as other:
            other.execute(delete(IdempotentRequest))
            other.commit()

    event.listen(wallet.db.engine, "handle_error", released)
    response = client.post("/api/v1/accounts", json=body, headers=headers)
    event.remove(wallet.db.engine, "handle_error", released)
    assert fired, "the claim was never refused"
    assert response.status_code == 201, response.get_data(as_text=True)
    with wallet.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Account).where(Account.name == "Acme")) == 1
        assert session.scalar(select(IdempotentRequest.state)) == "done"
    replay = client.post("/api/v1/accounts", json=body, headers=headers)
    assert (replay.status_code, replay.get_json()) == (201, response.get_json())


def _scope_of(wallet, token: str) -> str:
    return authenticate(wallet.db, token).actor
