"""Start-up with a configuration that cannot work: one line naming the problem, a non-zero exit."""
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-db-password"


def env_for(tmp_path, **changes) -> dict:
    env = {
        "APP_ENV": "test",
        "SECRET_KEY": "test-secret-key-" + "x" * 32,
        "PUBLIC_BASE_URL": "http://wallet.test",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "LOG_LEVEL": "WARNING",
    }
    env.update(changes)
    return env


@pytest.mark.parametrize(
    "url",
    [
        f"nosuchdb://wallet:{PASSWORD}@db/wallet",
        f"not a url {PASSWORD}",
        f"postgresql+nosuchdriver://wallet:{PASSWORD}@db/wallet",
        f"postgresql://wallet:{PASSWORD}@db:notaport/wallet",
    ],
)
def test_a_database_url_that_cannot_work_is_a_config_error_naming_no_value(tmp_path, url):
    settings = load_settings(env_for(tmp_path, DATABASE_URL=url))
    with pytest.raises(ConfigError, match="DATABASE_URL") as info:
        create_app(settings)
    assert PASSWORD not in str(info.value)


def test_an_instance_folder_that_cannot_hold_the_secret_key_is_a_config_error(tmp_path):
    blocked = tmp_path / "instance"
    blocked.write_text("a file where the folder should be")
    env = env_for(tmp_path)
    del env["SECRET_KEY"]
    with pytest.raises(ConfigError, match="instance folder"):
        load_settings(env)


def test_an_unreadable_development_key_file_is_a_config_error(tmp_path):
    keys = tmp_path / "instance" / "keys"
    keys.mkdir(parents=True)
    (keys / "app_private.pem").mkdir()  # there, but not a file that can be read
    settings = load_settings(env_for(tmp_path))
    with pytest.raises(ConfigError, match="app_private.pem"):
        create_app(settings)


def test_an_unreadable_configured_key_file_is_a_config_error(tmp_path):
    settings = load_settings(env_for(tmp_path, ALIPAY_APP_PRIVATE_KEY=str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="app private key"):
        create_app(settings)


def test_the_apps_own_public_key_given_as_alipays_is_a_config_error(tmp_path):
    # The most common Alipay mistake: every answer and notify from Alipay would then fail
    # verification, top-ups would fail at run time with nothing pointing at the cause.
    from app.adapters.alipay.keys import generate_keypair

    private_pem, public_pem = generate_keypair()
    settings = load_settings(env_for(
        tmp_path,
        ALIPAY_GATEWAY_URL="https://openapi-sandbox.dl.alipaydev.com/gateway.do",
        ALIPAY_APP_PRIVATE_KEY=private_pem,
        ALIPAY_PUBLIC_KEY=public_pem,
    ))
    with pytest.raises(ConfigError, match="ALIPAY_PUBLIC_KEY is the app's own public key"):
        create_app(settings)
    settings = load_settings(env_for(
        tmp_path,
        ALIPAY_GATEWAY_URL="https://openapi-sandbox.dl.alipaydev.com/gateway.do",
        ALIPAY_APP_PRIVATE_KEY=private_pem,
        ALIPAY_PUBLIC_KEY=generate_keypair()[1],
    ))
    assert create_app(settings).extensions["wallet"].gateway is not None


def run(args, env, timeout=60):
    return subprocess.run(
        args, cwd=ROOT, env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True, text=True, timeout=timeout,
    )


def assert_one_line_error(result, *expected):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0]


def test_the_cli_with_a_bad_database_url_exits_with_one_line(tmp_path):
    env = env_for(tmp_path, DATABASE_URL=f"nosuchdb://wallet:{PASSWORD}@db/wallet")
    result = run([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "list"], env)
    assert_one_line_error(result, "DATABASE_URL")


def test_the_cli_in_production_without_its_settings_exits_with_one_line(tmp_path):
    result = run([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "list"], env_for(tmp_path, APP_ENV="production"))
    assert_one_line_error(result, "production needs")


def test_gunicorn_with_a_bad_database_url_exits_with_one_line(tmp_path):
    env = env_for(tmp_path, DATABASE_URL=f"nosuchdb://wallet:{PASSWORD}@db/wallet",
                  GUNICORN_BIND="127.0.0.1:0", WEB_CONCURRENCY="1")
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    result = run([gunicorn, "-c", "config/gunicorn.conf.py", "wsgi:app"], env)
    assert_one_line_error(result, "DATABASE_URL")


@pytest.mark.parametrize("level", ["verbose", "info2", "10"])
def test_a_log_level_that_names_no_level_is_a_config_error(tmp_path, level):
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_settings(env_for(tmp_path, LOG_LEVEL=level))


@pytest.mark.parametrize("level", ["DEBUG", "info", "Warning", "ERROR"])
def test_the_documented_log_levels_are_accepted_in_any_case(tmp_path, level):
    assert load_settings(env_for(tmp_path, LOG_LEVEL=level)).log_level == level.upper()


def test_the_cli_with_a_bad_log_level_exits_with_one_line(tmp_path):
    result = run([sys.executable, "-m", "flask", "--app", "wsgi", "jobs", "list"], env_for(tmp_path, LOG_LEVEL="verbose"))
    assert_one_line_error(result, "LOG_LEVEL")


@contextlib.contextmanager
def serving_gunicorn(tmp_path, **changes):
    """Start gunicorn with config/gunicorn.conf.py on a migrated SQLite database; yield its port
    and process once it answers, and stop it after (its stderr is left to read)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = env_for(tmp_path, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1",
                  DATABASE_URL=migrated_sqlite(tmp_path, "head"), **changes)
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen([gunicorn, "-c", "config/gunicorn.conf.py", "wsgi:app"], cwd=ROOT,
                              env={"PATH": os.environ.get("PATH", ""), **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    answer = response.status
                break
            except OSError:
                if server.poll() is not None:
                    break
                time.sleep(0.1)
        assert answer == 200, server.stderr.read() if server.poll() is not None else "no answer"
        yield port, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_gunicorn_serves_without_a_control_socket_that_other_instances_on_the_host_would_share(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with serving_gunicorn(tmp_path, HOME=str(home)):
        assert not (home / ".gunicorn").exists()


def test_gunicorn_logs_a_malformed_request_without_its_text(tmp_path):
    # gunicorn logs the offending line of a request it cannot parse as it came; a header line
    # without its colon may well be "Authorization Bearer <token>".
    token = "wlt_" + "Q" * 40
    with serving_gunicorn(tmp_path, LOG_LEVEL="INFO") as (port, server):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(f"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {token}\r\n\r\n".encode())
            assert client.recv(1024).startswith(b"HTTP/1.1 400")
        server.send_signal(signal.SIGTERM)
        log = server.communicate(timeout=30)[1]
    assert "Invalid request from ip=127.0.0.1" in log
    assert token not in log and "Bearer" not in log


def migrated_sqlite(tmp_path, revision: str | None) -> str:
    """The URL of a SQLite database in ``tmp_path`` migrated to ``revision`` (None: left empty)."""
    from app.adapters.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'wallet.sqlite3'}"
    if revision is not None:
        upgrade(url, revision)
    return url


@pytest.mark.parametrize("revision, said", [("0007", "at revision 0007"), (None, "not created")])
def test_gunicorn_refuses_a_database_that_db_upgrade_has_not_reached(tmp_path, revision, said):
    from app.adapters.db.migrate import current_heads

    env = env_for(tmp_path, DATABASE_URL=migrated_sqlite(tmp_path, revision),
                  GUNICORN_BIND="127.0.0.1:0", WEB_CONCURRENCY="1")
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    result = run([gunicorn, "-c", "config/gunicorn.conf.py", "wsgi:app"], env)
    assert_one_line_error(result, said, current_heads()[0], "flask --app wsgi db upgrade")
    assert "Booting worker" not in result.stderr


@pytest.mark.parametrize("revision, said", [("0007", "at revision 0007"), (None, "not created")])
def test_the_scheduler_refuses_a_database_that_db_upgrade_has_not_reached(tmp_path, revision, said):
    env = env_for(tmp_path, DATABASE_URL=migrated_sqlite(tmp_path, revision))
    result = run([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"], env)
    assert result.returncode == 1
    assert_one_line_error(result, said, "flask --app wsgi db upgrade")
    assert "scheduler started" not in result.stderr


def test_the_schema_check_passes_a_database_at_the_newest_revision_or_a_newer_one(tmp_path, caplog):
    from sqlalchemy import create_engine, text

    from app.adapters.db.migrate import schema_behind

    engine = create_engine(migrated_sqlite(tmp_path, "head"))
    try:
        assert schema_behind(engine) is None
        with engine.begin() as connection:  # as a later release's migration leaves it
            connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert schema_behind(engine) is None
        assert "does not know" in caplog.text
    finally:
        engine.dispose()
