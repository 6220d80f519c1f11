"""Schemathesis fuzzes every documented operation in-process: bad input is a 4xx, never a 500.

Bounded and deterministic (derandomized Hypothesis, no example database) so that it stays a
fast regression net; the deep exploration is done by hand with more examples. Outgoing
Alipay calls go to the app's own sandbox through ``alipay_http``: nothing reaches the network.
"""
from __future__ import annotations

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (it belongs to the test extra)"
)

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.conftest import bearer  # noqa: E402

EXAMPLES = 8
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
PROBLEM = "application/problem+json"


@pytest.fixture
def app(make_app, sqlite_url):
    return make_app(sqlite_url)


def test_no_generated_request_is_a_server_error(app, admin_token, token_for, new_account, alipay_http):
    account = new_account()
    tokens = {"admin": admin_token, "account": token_for("account", account["id"])}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        fixed = {"account_id": account["id"]} if "{account_id}" in operation.path else None
        for role, token in tokens.items():
            for mode in MODES:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

                @settings(
                    max_examples=EXAMPLES,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def check(case):
                    case.headers = {**(case.headers or {}), **bearer(token)}
                    response = case.call()
                    if response.status_code >= 500:
                        failures.append(
                            f"{operation.label} as {role} ({mode.value}): {response.status_code}\n"
                            f"{case.as_curl_command()}"
                        )
                    elif operation.path.startswith("/api/v1/") and response.status_code >= 400:
                        headers = {name.lower(): values for name, values in response.headers.items()}
                        content_type = (headers.get("content-type") or [""])[0]
                        if not content_type.startswith(PROBLEM):
                            failures.append(
                                f"{operation.label} as {role}: {response.status_code} is {content_type!r}, "
                                f"not problem+json\n{case.as_curl_command()}"
                            )

                try:
                    check()
                except Exception as exc:  # noqa: BLE001 - e.g. Unsatisfiable for an operation without inputs
                    if type(exc).__name__ != "Unsatisfiable":
                        raise

    assert not failures, "\n\n".join(failures[:10])
