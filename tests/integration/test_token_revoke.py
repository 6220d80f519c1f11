"""Operators can see and revoke tokens: a leaked token stops working without hand-written SQL."""
from __future__ import annotations

from tests.conftest import bearer
from tests.integration.test_pages import sign_in


def cli(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_a_revoked_token_gets_401_and_its_page_sessions_end(app, client, new_account):
    account = new_account("Acme")
    created = cli(app, "token", "create", "--role", "account", "--account", account["id"], "--label", "console")
    token = created.output.strip().splitlines()[-1]
    page = app.test_client()
    sign_in(page, token)
    assert page.get("/billing/").status_code == 200
    [line] = [row for row in cli(app, "token", "list").output.splitlines() if row.endswith("\tconsole")]
    token_id = line.split("\t")[0]
    assert token not in cli(app, "token", "list").output
    assert f"token {token_id} " in created.output

    result = cli(app, "token", "revoke", token_id)
    assert result.exit_code == 0, result.output
    assert client.get(f"/api/v1/accounts/{account['id']}/wallet", headers=bearer(token)).status_code == 401
    assert page.get("/billing/").headers["Location"].startswith("/login")
    listed = [row for row in cli(app, "token", "list").output.splitlines() if row.startswith(f"{token_id}\t")]
    assert listed and listed[0].split("\t")[4] != "-"


def test_revoking_an_unknown_or_revoked_token_says_so(app, admin_token):
    assert cli(app, "token", "revoke", "999").exit_code == 2
    assert cli(app, "token", "revoke", "x").exit_code == 2
    [line] = cli(app, "token", "list").output.splitlines()
    token_id = line.split("\t")[0]
    assert cli(app, "token", "revoke", token_id).exit_code == 0
    again = cli(app, "token", "revoke", token_id)
    assert again.exit_code == 2 and "no unrevoked token" in again.output


def test_token_list_keeps_each_token_on_one_line_of_six_fields_whatever_its_label_holds(app):
    cli(app, "token", "create", "--role", "finance", "--label", "ci\tbot\n9\tadmin\t-\t2026\t-\tforged")
    cli(app, "token", "create", "--role", "finance", "--label", "财务 脚本")
    rows = cli(app, "token", "list").output.splitlines()
    assert len(rows) == 2 and all(len(row.split("\t")) == 6 for row in rows)
    assert rows[0].endswith("\tci\\tbot\\n9\\tadmin\\t-\\t2026\\t-\\tforged")
    assert rows[1].endswith("\t财务 脚本")
