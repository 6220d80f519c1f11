"""Benchmark notify verification: python-alipay-sdk's verifier against ours, on the same notifies.

    .venv/bin/python scripts/bench_alipay_verify.py [-n 2000] [--rounds 3]

Both verify the same N signed payment notifies (decoded from form bodies, as the web layer
sees them). The SDK path is ``AliPay(...).verify(copy_without_sign, sign)`` (pycryptodomex);
ours is ``app.adapters.alipay.notify.verify_notify`` (cryptography / OpenSSL). The best of
``--rounds`` runs is reported for each, as verifications per second, with the ratio.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alipay import AliPay  # noqa: E402

from app.adapters.alipay.keys import (  # noqa: E402
    generate_keypair,
    load_alipay_public_key,
    load_app_private_key,
)
from app.adapters.alipay.notify import decode_notify_body, verify_notify  # noqa: E402
from app.adapters.alipay.sandbox.notify_builder import (  # noqa: E402
    encode_form,
    payment_notify_fields,
    sign_params,
)


def build_notifies(count: int, alipay_private_key) -> list[dict[str, str]]:
    """Return ``count`` distinct signed notifies, decoded from their form bodies."""
    notifies = []
    for index in range(count):
        fields = payment_notify_fields(
            app_id="2021000000000042",
            seller_id="2088000000000042",
            out_trade_no=f"T20261126120000{index:020d}",
            trade_no=f"20261126220014{index:014d}",
            total_amount=f"{index % 5000 + 1}.00",
            subject="钱包充值",
            buyer_id="2088000000000099",
            buyer_logon_id="abc***@example.com",
            gmt_create="2026-11-26 20:00:00",
            gmt_payment="2026-11-26 20:00:05",
            notify_time="2026-11-26 20:00:06",
            notify_id=f"{index:032x}",
        )
        notifies.append(decode_notify_body(encode_form(sign_params(alipay_private_key, fields))))
    return notifies


def sdk_verify_all(sdk: AliPay, notifies: list[dict[str, str]]) -> int:
    ok = 0
    for params in notifies:
        data = dict(params)  # the SDK pops sign_type from what it is given
        signature = data.pop("sign")
        ok += bool(sdk.verify(data, signature))
    return ok


def ours_verify_all(public_key, notifies: list[dict[str, str]]) -> int:
    return sum(verify_notify(params, public_key) for params in notifies)


def best_rate(run, count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        verified = run()
        elapsed = time.perf_counter() - started
        if verified != count:
            raise SystemExit(f"only {verified} of {count} notifies verified")
        best = min(best, elapsed)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="notifies to verify per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best one counts")
    args = parser.parse_args()

    alipay_private_pem, alipay_public_pem = generate_keypair()
    app_private_pem, _ = generate_keypair()
    notifies = build_notifies(args.n, load_app_private_key(alipay_private_pem))
    sdk = AliPay(
        appid="2021000000000042",
        app_private_key_string=app_private_pem,
        alipay_public_key_string=alipay_public_pem,
        sign_type="RSA2",
    )
    public_key = load_alipay_public_key(alipay_public_pem)

    sdk_verify_all(sdk, notifies[:20])  # warm-up
    ours_verify_all(public_key, notifies[:20])
    sdk_rate = best_rate(lambda: sdk_verify_all(sdk, notifies), args.n, args.rounds)
    ours_rate = best_rate(lambda: ours_verify_all(public_key, notifies), args.n, args.rounds)

    print(f"notifies: {args.n} (RSA2, 2048-bit), best of {args.rounds} rounds")
    print(f"python-alipay-sdk verify (pycryptodomex): {sdk_rate:10.0f} verifications/s")
    print(f"ours verify_notify (cryptography):       {ours_rate:10.0f} verifications/s")
    print(f"ratio ours/sdk: {ours_rate / sdk_rate:.2f}x")


if __name__ == "__main__":
    main()
