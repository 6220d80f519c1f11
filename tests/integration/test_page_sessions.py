"""Page sessions end on the server: signing out, or their lifetime running out, ends every copy
of the cookie, not only the browser's own. Page forms take small bodies only."""
import io

from tests.integration.test_pages import account, account_client, csrf_of, sign_in  # noqa: F401 - fixtures


def copy_of_cookie(app, client):
    name = app.config["SESSION_COOKIE_NAME"]
    other = app.test_client()
    other.set_cookie(name, client.get_cookie(name).value)
    return other


def test_a_copy_of_the_session_cookie_opens_nothing_after_signing_out(app, account_client):
    copy = copy_of_cookie(app, account_client)
    assert copy.get("/billing/").status_code == 200
    form = account_client.get("/billing/recharge")
    assert account_client.post("/logout", data={"csrf_token": csrf_of(form)}).headers["Location"] == "/login"
    assert copy.get("/billing/").headers["Location"] == "/login?next=/billing/"
    sent = copy.post("/billing/recharge", data={"amount": "1.00", "method": "alipay", "csrf_token": csrf_of(form)})
    assert sent.status_code == 302 and sent.headers["Location"] == "/login"


def test_signing_in_again_ends_the_session_the_cookie_held_before(app, account_client, token_for, account):
    before = copy_of_cookie(app, account_client)
    form = account_client.get("/billing/")  # signed in, /login only redirects
    account_client.post("/login", data={"token": token_for("account", account["id"]), "csrf_token": csrf_of(form)})
    assert account_client.get("/billing/").status_code == 200
    assert before.get("/billing/").headers["Location"].startswith("/login")


def test_a_page_session_lasts_a_working_day_from_signing_in(app, account_client, monkeypatch):
    import time

    signed_at = time.time()
    monkeypatch.setattr(time, "time", lambda: signed_at + 11 * 3600)
    assert account_client.get("/billing/").status_code == 200
    monkeypatch.setattr(time, "time", lambda: signed_at + 13 * 3600)
    assert account_client.get("/billing/").headers["Location"] == "/login?next=/billing/"


def test_each_browser_signed_in_with_one_token_signs_out_alone(app, token_for, account):
    token = token_for("account", account["id"])
    first, second = app.test_client(), app.test_client()
    sign_in(first, token)
    sign_in(second, token)
    first.post("/logout", data={"csrf_token": csrf_of(first.get("/billing/"))})
    assert first.get("/billing/").status_code == 302
    assert second.get("/billing/").status_code == 200


def test_page_forms_refuse_a_large_body_before_reading_it(app, account_client):
    big = {"token": "wlt_x", "upload": (io.BytesIO(b"x" * (1024 * 1024)), "big.bin")}
    assert app.test_client().post("/login", data=big, content_type="multipart/form-data").status_code == 413
    form = account_client.get("/billing/recharge")
    padded = {"amount": "1.00", "method": "alipay", "csrf_token": csrf_of(form), "pad": "x" * (128 * 1024)}
    assert account_client.post("/billing/recharge", data=padded).status_code == 413
    assert account_client.post("/billing/recharge", data={"amount": "", "method": "alipay",
                                                     "csrf_token": csrf_of(form)}).status_code == 422


def test_the_purge_job_forgets_ended_and_outlived_sessions_and_keeps_the_live_one(
        app, wallet, account_client, token_for, account, clock):
    from sqlalchemy import func, select

    from app.adapters.db.models import PageSession
    from app.jobs import run_job

    def rows():
        with wallet.db.sessions() as session:
            return session.scalar(select(func.count()).select_from(PageSession))

    ended = app.test_client()
    sign_in(ended, token_for("account", account["id"]))
    ended.post("/logout", data={"csrf_token": csrf_of(ended.get("/billing/recharge"))})
    clock.advance(hours=13)
    live = app.test_client()
    sign_in(live, token_for("account", account["id"]))
    assert rows() == 3  # the outlived one (account_client), the ended one, the live one
    assert run_job(wallet, "page-sessions-purge") == "forgot 2 page session(s)"
    assert rows() == 1
    assert live.get("/billing/").status_code == 200
    assert account_client.get("/billing/").headers["Location"] == "/login?next=/billing/"


def test_a_page_form_too_large_is_answered_with_the_error_page(app, account_client):
    form = account_client.get("/billing/recharge")
    padded = {"amount": "1.00", "method": "alipay", "csrf_token": csrf_of(form), "pad": "x" * (128 * 1024)}
    for client, path, data in ((app.test_client(), "/login", {"token": "x" * (128 * 1024)}),
                               (account_client, "/billing/recharge", padded)):
        response = client.post(path, data=data)
        assert response.status_code == 413
        assert response.mimetype == "text/html"
        assert 'data-testid="error-message"' in response.get_data(as_text=True)
        assert "Content-Security-Policy" in response.headers


def test_the_session_row_ends_after_12_hours_whatever_age_its_cookie_signature_says(app, account_client, clock):
    # The cookie here is signed by the wall clock and stays fresh; the row counts by the service's.
    clock.advance(hours=11, minutes=59)
    assert account_client.get("/billing/").status_code == 200
    clock.advance(minutes=2)
    assert account_client.get("/billing/").headers["Location"] == "/login?next=/billing/"
