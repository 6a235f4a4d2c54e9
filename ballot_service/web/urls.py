"""Absolute URLs that leave the building: the QR on a record or the screen, a tablet's set-up
link. They use BALLOT_PUBLIC_URL when it is set, since the address the secretariat happens to
reach the server by (127.0.0.1, or a proxy's inside name) is not the one phones and tablets use."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import current_app, request, url_for


def public_base() -> str:
    """The service's public address, without a trailing slash."""
    configured = current_app.config["SETTINGS"].public_url
    return configured or request.host_url.rstrip("/")


def public_url_for(endpoint: str, **values) -> str:
    """url_for(endpoint, **values) as an absolute URL under public_base()."""
    return public_base() + url_for(endpoint, **values)


def unreachable_public_base() -> bool:
    """The links and QR codes would name this machine's own loopback (127.0.0.1, localhost):
    a tablet or phone scanning them reaches itself, not the service. The console then says how
    to set the public address (BALLOT_PUBLIC_URL)."""
    host = (urlsplit(public_base()).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
