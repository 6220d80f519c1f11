"""A local stand-in for Alipay's gateway, for development and tests.

It signs with its own generated "Alipay" keypair, verifies requests with the app's public
key, issues QR codes that point at a payer page, and on "Pay" posts a signed notify to the
merchant and redirects the browser to the merchant's return URL.

It never runs by itself, and never in production: it is only a blueprint that the app factory
mounts (at ``/_sandbox/alipay``) in non-production configurations. The notify is posted from
inside the "Pay" request, so a server that handles one request at a time cannot receive it
from itself; use the threaded development server.
"""
from .state import NotifyAttempt, SandboxRefusal, SandboxState, SandboxTrade
from .views import create_sandbox_blueprint

__all__ = [
    "NotifyAttempt",
    "SandboxRefusal",
    "SandboxState",
    "SandboxTrade",
    "create_sandbox_blueprint",
]
