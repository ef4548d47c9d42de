"""The real client address behind reverse proxies, believed only from proxies we trust.

``X-Forwarded-For`` is a list anyone can start: a client may send ``X-Forwarded-For: 1.2.3.4``
and each proxy appends the address it saw. So the list is read from the right, skipping our
own proxies (``PORTAL_TRUSTED_PROXIES``, addresses or networks), and the first address that
is not one of them is the client. A request that did not come from a trusted proxy keeps
its socket address, whatever headers it carries."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_address(remote_addr: str, forwarded_for: str, trusted: list[Network]) -> str:
    """The client's address given the socket peer and the X-Forwarded-For header."""

    def is_trusted(value: str) -> bool:
        address = _address(value)
        return address is not None and any(address in network for network in trusted)

    if not trusted or not is_trusted(remote_addr):
        return remote_addr
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return remote_addr  # a garbled header: keep what we know
        if not is_trusted(hop):
            return str(address)
    return str(_address(hops[0])) if hops else remote_addr


class TrustedProxyMiddleware:
    """Sets ``REMOTE_ADDR`` to the client's address when a trusted proxy forwarded the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.trusted = trusted_networks(settings.PORTAL_TRUSTED_PROXIES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.trusted:
            request.META["REMOTE_ADDR"] = client_address(
                request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""), self.trusted
            )
        return self.get_response(request)
