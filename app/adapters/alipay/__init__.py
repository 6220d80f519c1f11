"""Alipay open platform adapter: keys, RSA2 signing, notify decoding, the HTTP gateway client
and a local sandbox standing in for Alipay's gateway.

Modules are imported one by one (``app.adapters.alipay.notify``, ``...gateway``) so that the
web layer can verify notifies without importing the SDK the HTTP client is built on.
"""
