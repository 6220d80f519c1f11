"""Run the service locally in one command: SQLite in ./instance and the local Alipay sandbox.

Migrates the database, creates a demo account and its tokens on the first run (kept in
instance/dev-tokens.json, mode 0600, and reused afterwards), prints where to go and what to
paste, then serves with werkzeug's threaded server: the sandbox posts its payment notify to
this same process while the "Pay" request is still open, which a one-request-at-a-time server
could never answer. For development only; production runs gunicorn (see README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import ConfigError, load_settings  # noqa: E402

DEFAULT_PORT = 5000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="port to listen on (default: PORT or 5000)")
    parser.add_argument("--host", default=None, help="address to listen on (default: PUBLIC_BASE_URL's host)")
    return parser.parse_args(argv)


def prepare_environment(port_arg: int | None) -> tuple[str, int]:
    """Settle PUBLIC_BASE_URL and the address to listen on; return (host, port)."""
    port = port_arg or (int(os.environ["PORT"]) if os.environ.get("PORT") else None)
    base = os.environ.get("PUBLIC_BASE_URL")
    if not base:
        base = f"http://127.0.0.1:{port or DEFAULT_PORT}"
        os.environ["PUBLIC_BASE_URL"] = base
    parts = urlsplit(base)
    host = parts.hostname or "127.0.0.1"
    return host, port or parts.port or (443 if parts.scheme == "https" else 80)


def load_tokens(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_tokens(path: Path, tokens: dict) -> None:
    """Write the token file readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(tokens, handle, indent=2)
    path.chmod(0o600)


def tokens_still_valid(wallet, tokens: dict) -> bool:
    """Tell whether the stored tokens and account still exist in this database."""
    from app.domain.errors import NotFound
    from app.services.accounts import get_account
    from app.services.tokens import authenticate

    try:
        get_account(wallet.db, tokens["account_id"])
    except (KeyError, NotFound):
        return False
    return all(authenticate(wallet.db, tokens.get(role, "")) is not None for role in ("admin", "finance", "account"))


def create_demo(wallet) -> dict:
    """Create the demo account and an admin, a finance and an account token."""
    from app.services.accounts import create_account
    from app.services.tokens import create_token

    account = create_account(wallet.db, wallet.clock, name="Demo Company", settlement="guance")
    return {
        "account_id": account.id,
        "admin": create_token(wallet.db, wallet.clock, role="admin", label="dev server"),
        "finance": create_token(wallet.db, wallet.clock, role="finance", label="dev server"),
        "account": create_token(wallet.db, wallet.clock, role="account", account_id=account.id, label="dev server"),
    }


def banner(base_url: str, tokens: dict, tokens_path: Path) -> str:
    return "\n".join(
        [
            "",
            "Wallet service (development: SQLite, local Alipay sandbox; no real money moves)",
            "",
            f"  Open   {base_url}/login",
            "",
            "  Tokens to paste on the sign-in page (dev only):",
            f"    account  {tokens['account']}   (the demo account's wallet: /billing/)",
            f"    finance  {tokens['finance']}   (the finance console: /finance/)",
            f"    admin    {tokens['admin']}",
            "",
            f"  Demo account {tokens['account_id']}; tokens kept in {tokens_path}",
            "  Recharge with Alipay, open the QR code's link (the sandbox payer page), press Pay.",
            "  Ctrl-C stops the server.",
            "",
        ]
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    os.environ.setdefault("APP_ENV", "development")
    os.environ.setdefault("INSTANCE_PATH", str(ROOT / "instance"))
    if os.environ["APP_ENV"].strip().lower() == "production":
        print("scripts/run is for development; production runs gunicorn (see README.md).", file=sys.stderr)
        return 2
    host, port = prepare_environment(args.port)
    host = args.host or host
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    from app import create_app
    from app.adapters.db.migrate import upgrade

    upgrade(settings.database_url)
    app = create_app(settings)
    wallet = app.extensions["wallet"]

    tokens_path = settings.instance_path / "dev-tokens.json"
    tokens = load_tokens(tokens_path)
    if tokens is None or not tokens_still_valid(wallet, tokens):
        tokens = create_demo(wallet)
        write_tokens(tokens_path, tokens)
    print(banner(settings.public_base_url, tokens, tokens_path), flush=True)

    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
