"""The client's address behind a reverse proxy or load balancer. Only a request that comes
from an address in BALLOT_TRUSTED_PROXIES has its X-Forwarded-For / X-Forwarded-Proto read
(werkzeug's ProxyFix, one hop: the entry that proxy appended); from anywhere else those
headers are ignored, so a client cannot choose its own address. Without it every login
behind the proxy would come from one address, and one address's lockout would lock out the
whole hall (domain/login_limits.py)."""
from __future__ import annotations

from ipaddress import ip_address, ip_network

from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxies:
    """WSGI middleware: ProxyFix for requests from a trusted proxy, the app as is for others."""

    def __init__(self, app, networks):
        self.app = app
        self.networks = tuple(ip_network(n, strict=False) for n in networks)
        self.behind_proxy = ProxyFix(app, x_for=1, x_proto=1)

    def trusted(self, remote_addr: str | None) -> bool:
        try:
            addr = ip_address(remote_addr or "")
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def __call__(self, environ, start_response):
        if self.trusted(environ.get("REMOTE_ADDR")):
            return self.behind_proxy(environ, start_response)
        return self.app(environ, start_response)
