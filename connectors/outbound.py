"""The outbound policy: where the portal's server may send a request.

Every outbound call (connectors through ``connectors.http.HttpClient``, webhook
deliveries, tests of a connection) passes here, once when its URL is saved
(``OutboundPolicy.check_url``) and again at every call (``PinnedTransport``):

- the host is resolved once; every address it resolves to must be global, i.e. not
  loopback, private, shared, link-local, multicast, reserved or unspecified, in any
  notation (``2130706433``, ``0x7f.1``, ``127.1``, ``0177.0.0.1``, ``::ffff:127.0.0.1``);
- unless the host name, or a CIDR holding the address, is in the allow-list (the
  portal passes ``settings.PORTAL_OUTBOUND_ALLOW``; local and test settings allow
  loopback so the simulators answer);
- the connection then goes to the address that was checked, never through a second
  DNS lookup, so a rebinding name cannot switch to an internal address in between.
  The ``Host`` header and TLS SNI keep the original name.

This module knows nothing of Django: the portal configures the process-wide policy
at start-up (``configure``), and tests build policies with a resolver stub.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from .base import PermanentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

__all__ = [
    "OutboundPolicy",
    "OutboundRefused",
    "PinnedTransport",
    "configure",
    "current_policy",
    "destination",
    "parse_ip_literal",
    "short_escaped",
]


class OutboundRefused(PermanentError):
    """The outbound policy refuses this destination (never retried)."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), in the system's order."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes when it is an IP literal in any notation, else None.

    ``inet_aton`` reads what browsers and libc read: decimal (``2130706433``), hex
    (``0x7f000001``), octal (``0177.0.0.1``) and short forms (``127.1``).
    """
    text = host.strip().strip("[]").rstrip(".")
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        pass
    if re.fullmatch(r"[0-9a-fA-FxX.]+", text) and re.match(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.|$)", text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def refusal_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public destination, or None when it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            reason = refusal_reason(embedded)
            return f"{reason} (embedded in {ip})" if reason else None
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64 of an IPv4 address
            return refusal_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-global", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


def destination(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port made explicit; what secrets are bound to."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower().rstrip("."), port


def short_escaped(text: str, limit: int = 200) -> str:
    """An untrusted body fit for a message: printable characters only, whitespace folded, capped."""
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] not in ("C", "Z") or ch == " " else " " for ch in text[: limit * 4]
    )
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    cleaned = cleaned.replace("<", "‹").replace(">", "›")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


@dataclass(frozen=True)
class Resolved:
    """A checked destination: connect to ``address``, present ``host``."""

    host: str
    port: int
    address: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations are allowed. ``allow`` holds host names and CIDRs (``10.0.0.0/8``, ``::1``)."""

    allow: tuple[str, ...] = ()
    resolver: Resolver = system_resolver
    schemes: tuple[str, ...] = ("http", "https")
    _hosts: frozenset[str] = field(init=False, repr=False)
    _networks: tuple[Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in self.allow:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        object.__setattr__(self, "_hosts", frozenset(hosts))
        object.__setattr__(self, "_networks", tuple(networks))

    @classmethod
    def from_settings(cls, allow: Iterable[str], resolver: Resolver | None = None) -> OutboundPolicy:
        return cls(allow=tuple(allow), resolver=resolver or system_resolver)

    def _allowed(self, host: str, ip: IPAddress) -> bool:
        if host in self._hosts:
            return True
        candidates = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            candidates.append(ip.ipv4_mapped)
        return any(c.version == n.version and c in n for c in candidates for n in self._networks)

    def resolve(self, url: str | httpx.URL) -> Resolved:
        """Check ``url`` and return the address to connect to; raise OutboundRefused otherwise."""
        parts = urlsplit(str(url))
        scheme = parts.scheme.lower()
        if scheme not in self.schemes:
            raise OutboundRefused(f"Only {' and '.join(self.schemes)} URLs are allowed, not {scheme or 'none'}.")
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise OutboundRefused("The URL has no host.")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise OutboundRefused("The URL's port is not a number between 0 and 65535.") from None
        literal = parse_ip_literal(host)
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                found = self.resolver(host, port)
            except (OSError, UnicodeError):
                raise OutboundRefused(f"The host {host} does not resolve.") from None
            addresses = []
            for text in found:
                parsed = parse_ip_literal(text)
                if parsed is None:
                    raise OutboundRefused(f"The host {host} resolves to something that is not an address.")
                addresses.append(parsed)
            if not addresses:
                raise OutboundRefused(f"The host {host} does not resolve.")
        for ip in addresses:
            reason = refusal_reason(ip)
            if reason and not self._allowed(host, ip):
                shown = host if literal is None else str(literal)
                raise OutboundRefused(
                    f"Refused: {shown} is {reason} ({ip}); the portal does not call internal networks "
                    "unless PORTAL_OUTBOUND_ALLOW lists the host or its network."
                )
        first = addresses[0]
        return Resolved(
            host=host,
            port=port,
            address=str(first.ipv4_mapped or first) if isinstance(first, ipaddress.IPv6Address) else str(first),
            addresses=tuple(str(a) for a in addresses),
        )

    def check_url(self, url: str) -> None:
        """The save-time check: raise OutboundRefused when ``url`` may not be called."""
        self.resolve(url)


class PinnedTransport(httpx.BaseTransport):
    """Checks every request against the policy and connects to the checked address.

    The request's URL host is replaced by the address (so httpcore never resolves the
    name again); the ``Host`` header, built from the original URL, stays, and TLS gets
    the original name as SNI and for certificate checks.
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        inner: httpx.BaseTransport | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.policy = policy
        # The caller's TLS context (one per process: building one loads the CA bundle).
        self.inner = inner or httpx.HTTPTransport(verify=ssl_context if ssl_context is not None else True)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resolved = self.policy.resolve(request.url)
        if parse_ip_literal(resolved.host) is None and request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": resolved.host}
        if resolved.address != request.url.host:
            request.url = request.url.copy_with(host=resolved.address)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


_provider: Callable[[], OutboundPolicy] = OutboundPolicy


def configure(provider: Callable[[], OutboundPolicy]) -> None:
    """Set where the process-wide policy comes from (the portal: its settings, read at each call)."""
    global _provider
    _provider = provider


def current_policy() -> OutboundPolicy:
    """The process-wide policy; strict (nothing internal allowed) until configured."""
    return _provider()
