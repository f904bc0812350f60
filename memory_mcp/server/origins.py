"""Which ``Host`` and ``Origin`` headers the HTTP servers accept (DNS rebinding protection): the
loopback names on any port, the address the server is bound to, and the origins configured."""

from __future__ import annotations

from typing import Any

from mcp.server.transport_security import TransportSecuritySettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def transport_security(settings: Any) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"] + ([f"{settings.host}:*"] if settings.host not in LOOPBACK else [])
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)
