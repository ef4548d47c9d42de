"""The outbound policy: an SSRF corpus checked with a resolver stub, and the pinned transport
against loopback listeners only. No test sends traffic to a non-loopback address."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from connectors.base import ConnectorError, PermanentError
from connectors.http import HttpClient
from connectors.outbound import OutboundPolicy, OutboundRefused, PinnedTransport, destination, short_escaped

from .listener import listener

# A name → addresses table: the resolver stub. Unknown names do not resolve.
DNS = {
    "public.test": ["93.184.216.34"],
    "metadata.test": ["169.254.169.254"],
    "ten.test": ["10.1.2.3"],
    "mixed.test": ["93.184.216.34", "192.168.1.10"],
    "mapped.test": ["::ffff:10.0.0.1"],
    "v6local.test": ["fd00::1"],
    "localhost": ["127.0.0.1", "::1"],
    "pinned.test": ["127.0.0.1"],
}


def stub(calls: list[str] | None = None) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in DNS:
            raise OSError("no such name")
        return DNS[host]

    return resolve


STRICT = OutboundPolicy(resolver=stub())

INTERNAL = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://017700000001/",
    "http://0/",
    "http://0.0.0.0:8000/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.0.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://localhost/",
    "http://LOCALHOST./",
    "http://metadata.test/",
    "http://ten.test/",
    "http://mixed.test/",  # one internal address is enough
    "http://mapped.test/",
    "http://v6local.test/",
    "http://user:pw@10.0.0.1/",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_destinations_are_refused_in_every_notation(url: str) -> None:
    with pytest.raises(OutboundRefused) as info:
        STRICT.check_url(url)
    assert info.value.permanent
    assert "PORTAL_OUTBOUND_ALLOW" in info.value.message


@pytest.mark.parametrize("url", ["ftp://public.test/", "file:///etc/passwd", "gopher://public.test/", "http:///x"])
def test_other_schemes_and_hostless_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        STRICT.check_url(url)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="does not resolve"):
        STRICT.check_url("https://nowhere.test/")


def test_a_public_destination_passes_and_is_pinned_to_its_address() -> None:
    resolved = STRICT.resolve("https://public.test:8443/api")
    assert (resolved.host, resolved.port, resolved.address) == ("public.test", 8443, "93.184.216.34")


def test_the_allow_list_takes_hosts_and_networks() -> None:
    policy = OutboundPolicy(allow=("10.0.0.0/8", "localhost"), resolver=stub())
    policy.check_url("http://10.9.8.7/")
    policy.check_url("http://ten.test/")
    policy.check_url("http://[::ffff:10.0.0.1]/")  # mapped into an allowed network
    policy.check_url("http://localhost:8100/")
    with pytest.raises(OutboundRefused):
        policy.check_url("http://192.168.1.1/")
    with pytest.raises(OutboundRefused):
        policy.check_url("http://127.0.0.1/")  # the name localhost is allowed, not the address


def test_the_destination_of_a_url_is_scheme_host_and_port() -> None:
    assert destination("https://Example.com/a") == destination("https://example.com:443/b")
    assert destination("http://example.com/") != destination("https://example.com/")
    assert destination("https://example.com/") != destination("https://example.com:8443/")
    assert destination("https://example.com/") != destination("https://evil.example.com/")


def test_the_pinned_transport_connects_to_the_checked_address_without_a_second_lookup() -> None:
    """A name only the stub knows reaches the loopback listener: httpcore never resolved it."""
    with listener() as got:
        port = int(got.url.rsplit(":", 1)[1])
        calls: list[str] = []
        policy = OutboundPolicy(allow=("127.0.0.0/8",), resolver=stub(calls))
        with HttpClient(f"http://pinned.test:{port}", timeout=2, transport=PinnedTransport(policy)) as client:
            client.request("GET", "/hello")
        assert calls == ["pinned.test"]
        assert got.requests[0][1] == "/hello"
        assert got.requests[0][2]["Host"] == f"pinned.test:{port}"


def test_dns_rebinding_gets_nothing_the_call_time_check_refuses() -> None:
    """Public when saved, loopback when called: the call is refused before any connection."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    policy = OutboundPolicy(resolver=lambda host, port: next(answers))
    with listener() as got:
        port = int(got.url.rsplit(":", 1)[1])
        policy.check_url(f"http://rebind.test:{port}/")  # saved: fine
        with (
            HttpClient(f"http://rebind.test:{port}", timeout=2, transport=PinnedTransport(policy)) as client,
            pytest.raises(OutboundRefused, match="loopback"),
        ):
            client.request("GET", "/")
        assert got.requests == []


def test_every_http_client_applies_the_portal_policy(settings) -> None:
    """Test settings allow loopback (the simulators); without the allow-list the same call is refused
    and the listener hears nothing."""
    with listener() as got:
        with HttpClient(got.url, timeout=2) as client:
            client.request("GET", "/ok")
        assert len(got.requests) == 1
        settings.PORTAL_OUTBOUND_ALLOW = []
        with HttpClient(got.url, timeout=2) as client, pytest.raises(OutboundRefused):
            client.request("GET", "/refused")
        assert len(got.requests) == 1


def test_redirects_are_not_followed() -> None:
    with listener(status=302, headers={"Location": "http://169.254.169.254/"}) as got:
        policy = OutboundPolicy(allow=("127.0.0.0/8",), resolver=stub())
        with HttpClient(got.url, timeout=2, transport=PinnedTransport(policy)) as client, pytest.raises(PermanentError):
            client.request("GET", "/")
        assert len(got.requests) == 1


def test_an_internal_answer_is_shown_short_and_escaped() -> None:
    body = b"<script>alert(1)</script>\x00\x1b[31m" + b"A" * 5000
    with listener(status=500, body=body) as got:
        policy = OutboundPolicy(allow=("127.0.0.0/8",), resolver=stub())
        client = HttpClient(got.url, timeout=2, transport=PinnedTransport(policy))
        with client, pytest.raises(ConnectorError) as info:
            client.request("GET", "/")
    message = str(info.value)
    assert "<script>" not in message and "\x00" not in message and "\x1b" not in message
    assert "alert(1)" in message and len(message) < 600


def test_short_escaped() -> None:
    assert short_escaped("a\n\n b\t<c>") == "a b ‹c›"
    assert len(short_escaped("x" * 1000, 50)) == 50
