import pytest

from app.config import ConfigError, load_settings

PROD = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://wallet@db/wallet",
    "SECRET_KEY": "k" * 40,
    "PUBLIC_BASE_URL": "https://pay.example.com",
    "ALIPAY_APP_ID": "2021000000000001",
    "ALIPAY_APP_PRIVATE_KEY": "/etc/wallet/app.pem",
    "ALIPAY_PUBLIC_KEY": "/etc/wallet/alipay.pem",
    "ALIPAY_GATEWAY_URL": "https://openapi.alipay.com/gateway.do",
}


@pytest.mark.parametrize("missing", sorted(PROD.keys() - {"APP_ENV"}))
def test_production_refuses_to_start_without_its_keys(missing, tmp_path):
    env = {k: v for k, v in PROD.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        load_settings(env, instance_path=tmp_path)


def test_production_refuses_the_sandbox_app_id_left_from_the_example(tmp_path):
    with pytest.raises(ConfigError, match="ALIPAY_APP_ID is the sandbox's placeholder"):
        load_settings(dict(PROD, ALIPAY_APP_ID=" 2021000000000000 "), instance_path=tmp_path)


def test_production_refuses_the_local_sandbox(tmp_path):
    with pytest.raises(ConfigError, match="sandbox"):
        load_settings(dict(PROD, ALIPAY_GATEWAY_URL="sandbox"), instance_path=tmp_path)


@pytest.mark.parametrize("name", ["prod", "staging", "live", "production2", ""])
def test_an_unknown_environment_is_refused_not_taken_for_development(name, tmp_path):
    # With production's settings but a near-miss name, the service used to start in development
    # mode: the sandbox and generated keys allowed.
    with pytest.raises(ConfigError, match="APP_ENV must be one of production, development, test, benchmark"):
        load_settings(dict(PROD, APP_ENV=name), instance_path=tmp_path)


@pytest.mark.parametrize("name", ["development", "test", "benchmark", " Development "])
def test_the_local_environments_load(name, tmp_path):
    settings = load_settings({"APP_ENV": name}, instance_path=tmp_path)
    assert not settings.is_production


def test_production_is_read_whatever_its_case(tmp_path):
    assert load_settings(dict(PROD, APP_ENV=" Production"), instance_path=tmp_path).is_production


def test_config_errors_never_echo_secret_values(tmp_path):
    env = dict(PROD, ALIPAY_GATEWAY_URL="http://gateway.example")
    with pytest.raises(ConfigError) as info:
        load_settings(env, instance_path=tmp_path)
    assert PROD["SECRET_KEY"] not in str(info.value)


def test_production_settings_load(tmp_path):
    settings = load_settings(PROD, instance_path=tmp_path)
    assert settings.is_production and not settings.uses_sandbox
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.notify_url == "https://pay.example.com/alipay/notify"


def test_development_defaults_use_sqlite_sandbox_and_a_generated_secret(tmp_path):
    settings = load_settings({}, instance_path=tmp_path)
    assert settings.uses_sandbox
    assert settings.database_url == f"sqlite:///{tmp_path / 'wallet.sqlite3'}"
    again = load_settings({}, instance_path=tmp_path)
    assert settings.secret_key == again.secret_key and len(settings.secret_key) >= 40


def test_discount_tiers_are_configurable(tmp_path):
    settings = load_settings({"DISCOUNT_TIERS": "500:50,100:5"}, instance_path=tmp_path)
    assert [(t.threshold_fen, t.coupon_fen) for t in settings.discount_tiers] == [(10000, 500), (50000, 5000)]


@pytest.mark.parametrize("tiers", ["10000", "10000:0", "10000:1000.001", "10000:-1000", "1e4:1000", "10000:1000;"])
def test_discount_tiers_that_are_not_whole_fen_amounts_refuse_to_start(tiers, tmp_path):
    with pytest.raises(ConfigError, match="DISCOUNT_TIERS"):
        load_settings({"DISCOUNT_TIERS": tiers}, instance_path=tmp_path)


@pytest.mark.parametrize("days", ["0", "-365", "1.5", "a year"])
def test_a_card_validity_that_is_not_a_positive_number_of_days_refuses_to_start(days, tmp_path):
    # A card bought for cash must be able to pay: zero days would forfeit it at once.
    with pytest.raises(ConfigError, match="PREPAID_CARD_VALIDITY_DAYS"):
        load_settings({"PREPAID_CARD_VALIDITY_DAYS": days}, instance_path=tmp_path)


def test_card_validity_days_are_configurable_and_unset_means_a_calendar_year(tmp_path):
    configured = load_settings({"PREPAID_CARD_VALIDITY_DAYS": "30"}, instance_path=tmp_path)
    assert configured.prepaid_card_validity_days == 30
    assert load_settings({}, instance_path=tmp_path).prepaid_card_validity_days is None


def test_production_refuses_a_plain_http_public_url(tmp_path):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_settings(dict(PROD, PUBLIC_BASE_URL="http://pay.example.com"), instance_path=tmp_path)


@pytest.mark.parametrize("weak", ["CHANGE-ME", "dev", "s3cret-but-short-0123456789"])
def test_production_refuses_a_placeholder_or_short_secret_key(weak, tmp_path):
    # The key signs page sessions: anyone who knows or guesses it can forge an admin's session.
    with pytest.raises(ConfigError, match="SECRET_KEY") as info:
        load_settings(dict(PROD, SECRET_KEY=weak), instance_path=tmp_path)
    assert weak not in str(info.value)


def test_printing_the_settings_never_shows_a_secret(tmp_path):
    # Settings reach tracebacks with locals, debuggers and error reports through their repr.
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    env = dict(PROD, DATABASE_URL="postgresql://wallet:db-pass-4711@db/wallet", ALIPAY_APP_PRIVATE_KEY=pem)
    settings = load_settings(env, instance_path=tmp_path)
    shown = repr(settings)
    assert PROD["SECRET_KEY"] not in shown and "db-pass-4711" not in shown and "MIIEvQIBADAN" not in shown
    assert "pay.example.com" in shown  # what is not secret is still shown


@pytest.mark.parametrize(
    ("name", "largest"),
    [("TOPUP_EXPIRY_MINUTES", 21600), ("TOPUP_QUERY_MIN_INTERVAL_SECONDS", 86400), ("PREPAID_CARD_VALIDITY_DAYS", 36600)],
)
def test_a_duration_past_its_bound_refuses_to_start_instead_of_failing_each_purchase_or_top_up(name, largest, tmp_path):
    # Millions of days of validity, or an order open for millennia, is past the last datetime.
    assert getattr(load_settings({name: str(largest)}, instance_path=tmp_path), name.lower()) == largest
    for too_long in (str(largest + 1), "3000000", "99999999999", "9" * 5000):
        with pytest.raises(ConfigError, match=f"{name} must be at most {largest}"):
            load_settings({name: too_long}, instance_path=tmp_path)


@pytest.mark.parametrize("value", ["1_000", "١٥", "１５", "+15", "-0", "00", "15.0", "1e3"])
def test_a_duration_must_be_plain_ascii_digits(value, tmp_path):
    with pytest.raises(ConfigError, match="TOPUP_EXPIRY_MINUTES must be a positive whole number"):
        load_settings({"TOPUP_EXPIRY_MINUTES": value}, instance_path=tmp_path)


def test_what_is_kept_of_unverified_notifies_and_for_how_long_has_bounded_defaults(tmp_path):
    settings = load_settings({}, instance_path=tmp_path)
    assert (
        settings.notify_unverified_body_bytes,
        settings.notify_unverified_per_hour,
        settings.notify_unverified_retention_days,
        settings.operations_retention_days,
    ) == (8192, 1000, 90, 90)


@pytest.mark.parametrize(
    ("name", "largest"),
    [
        ("NOTIFY_UNVERIFIED_BODY_BYTES", 65536),
        ("NOTIFY_UNVERIFIED_PER_HOUR", 10_000_000),
        ("NOTIFY_UNVERIFIED_RETENTION_DAYS", 36600),
        ("OPERATIONS_RETENTION_DAYS", 36600),
    ],
)
def test_notify_and_retention_bounds_are_configurable_within_limits(name, largest, tmp_path):
    assert getattr(load_settings({name: "7"}, instance_path=tmp_path), name.lower()) == 7
    assert getattr(load_settings({name: str(largest)}, instance_path=tmp_path), name.lower()) == largest
    with pytest.raises(ConfigError, match=f"{name} must be at most {largest}"):
        load_settings({name: str(largest + 1)}, instance_path=tmp_path)
    for not_positive in ("0", "-1", "x"):
        with pytest.raises(ConfigError, match=f"{name} must be a positive whole number"):
            load_settings({name: not_positive}, instance_path=tmp_path)


@pytest.mark.parametrize("name", sorted(PROD.keys() - {"APP_ENV"}))
def test_production_counts_a_value_of_only_spaces_as_missing(name, tmp_path):
    with pytest.raises(ConfigError, match=f"production needs {name}"):
        load_settings(dict(PROD, **{name: "   "}), instance_path=tmp_path)


def test_production_refuses_a_secret_key_padded_to_length_with_spaces(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY must be a random string"):
        load_settings(dict(PROD, SECRET_KEY="short-key" + " " * 40), instance_path=tmp_path)


@pytest.mark.parametrize("name", ["PUBLIC_BASE_URL", "ALIPAY_GATEWAY_URL"])
@pytest.mark.parametrize(
    "url", ["https://", "https:///gateway.do", "https://pay example.com", "https://pay.example.com:port", " https://"]
)
def test_production_refuses_an_https_url_that_names_no_usable_host(name, url, tmp_path):
    with pytest.raises(ConfigError, match=f"{name} must be an https URL naming a host"):
        load_settings(dict(PROD, **{name: url}), instance_path=tmp_path)


@pytest.mark.parametrize("url", ["https://pay.example.com", "https://pay.example.com:8443/wallet/"])
def test_production_accepts_an_https_public_base_url_with_a_port_or_a_path(url, tmp_path):
    settings = load_settings(dict(PROD, PUBLIC_BASE_URL=url), instance_path=tmp_path)
    assert settings.notify_url == url.rstrip("/") + "/alipay/notify"
