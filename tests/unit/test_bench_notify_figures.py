"""The notify benchmark's own arithmetic: latency percentiles merged over alternating rounds."""
import importlib.util
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_notify.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_notify", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_notify", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run(requests, quantiles, max_us=None):
    """A wrk run as the Lua script reports it: quantiles as {"percent": microseconds}."""
    return {
        "requests": requests,
        "quantiles_us": {f"{p:.2f}": us for p, us in quantiles.items()},
        "lat_max_us": max_us if max_us is not None else max(quantiles.values()),
    }


def test_one_run_gives_back_its_own_percentiles(bench):
    single = run(1000, {50: 10_000, 90: 20_000, 99: 45_000, 100: 60_000})
    assert bench.merged_latency([single]) == {"p50": 10.0, "p90": 20.0, "p99": 45.0, "max": 60.0}


def test_runs_weigh_by_their_request_counts(bench):
    # A quarter of the requests took 10 ms, three quarters 30 ms.
    fast = run(100, {100: 10_000})
    slow = run(300, {100: 30_000})
    merged = bench.merged_latency([fast, slow])
    assert merged["p50"] == 30.0 and merged["p99"] == 30.0 and merged["max"] == 30.0
    assert bench.merged_latency([run(300, {100: 10_000}), run(100, {100: 30_000})])["p50"] == 10.0


def test_the_tail_of_a_slow_round_shows_in_the_merged_p99(bench):
    quiet = run(900, {100: 12_000})
    # One request in ten came in a slow round: the slowest 1% of all requests are all from it.
    busy = run(100, {90: 90_000, 100: 95_000})
    merged = bench.merged_latency([quiet, busy])
    assert merged["p50"] == 12.0 and merged["p90"] == 12.0
    assert merged["p99"] == 90.0 and merged["max"] == 95.0


def test_a_quantile_stands_for_the_requests_below_it_at_its_own_value(bench):
    # Half the requests at or under 10 ms, the rest at or under 12 ms: conservative upper ends.
    merged = bench.merged_latency([run(1000, {50: 10_000, 100: 12_000})])
    assert merged["p50"] == 10.0 and merged["p90"] == 12.0
