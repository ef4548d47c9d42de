"""The one HTTP choke point of every connector.

It holds the timeouts, maps transport failures and HTTP statuses onto the typed
errors of ``connectors.base``, and strips what must never reach a message (headers,
query strings of signed URLs). It does not retry or sleep: the release engine
reschedules transient failures, so no worker waits on a platform.
"""

from __future__ import annotations

import contextvars
import email.utils
import functools
import json
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import (
    AuthenticationError,
    ConnectorError,
    InvalidResponse,
    NotFound,
    PermanentError,
    RateLimited,
    ServerError,
    Timeout,
    Unreachable,
)
from .errortext import error_sentence
from .outbound import PinnedTransport, current_policy, short_escaped

USER_AGENT = "data-release-portal/1.0"

#: The idempotency key of the step being run (set by the engine around a non-idempotent
#: ``run_step``): sent as ``Idempotency-Key`` on every mutating request, so a platform that
#: honours it can drop a repeat, and the simulators count calls by it. Never a secret.
idempotency_key: contextvars.ContextVar[str] = contextvars.ContextVar("idempotency_key", default="")
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def safe_url(url: str | httpx.URL) -> str:
    """The URL without its query string or user info, fit for a message."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def default_error_message(response: httpx.Response) -> str:
    """The platform's own words from a JSON error body (``error_sentence``), else a short text excerpt."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()
        if "<html" in text[:200].lower():
            return f"HTTP {response.status_code} {response.reason_phrase}"
        # An untrusted body (maybe an internal service's): only short and escaped.
        return short_escaped(text) or f"HTTP {response.status_code} {response.reason_phrase}"
    # Never str(body): a Python repr of the platform's JSON is no message.
    return short_escaped(error_sentence(body) or "", 500) or f"HTTP {response.status_code} {response.reason_phrase}"


ErrorParser = Callable[[httpx.Response], str]


# Observers: code outside the connectors (the portal's metrics) sees every exchange without the
# connectors knowing it. An observer runs in the caller's thread and context, and never breaks a call.


@dataclass(frozen=True)
class Exchange:
    """One request as observers see it: no headers, no body, no query string."""

    method: str
    url: str  # safe_url(): without query string or user info
    status_code: int | None  # None when no answer came (timeout, refused, reset)
    seconds: float


Observer = Callable[[Exchange], None]
_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def _notify(exchange: Exchange) -> None:
    for observer in list(_observers):
        try:
            observer(exchange)
        except Exception:  # noqa: S112 - counting must never fail a platform call
            continue


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: building one loads the CA bundle,
    which cost about half of a release task (each task builds its connector afresh)."""
    return httpx.create_ssl_context()


class HttpClient:
    """httpx with explicit timeouts and typed errors.

    ``error_parser`` turns an error response into the platform's message; connectors
    whose platforms report errors their own way pass their own.

    Every request goes through the outbound policy (``connectors.outbound``): checked
    and pinned to the resolved address. A ``transport`` passed in (tests' mock
    transports) is used as given.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        error_parser: ErrorParser = default_error_message,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.error_parser = error_parser
        self._client = httpx.Client(
            auth=auth,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport or PinnedTransport(current_policy(), ssl_context=_ssl_context()),
            verify=_ssl_context(),
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: Iterable[int] = (200, 201, 202, 204),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request; return the response if its status is in ``ok``.

        Raises Timeout, Unreachable, RateLimited, ServerError (transient) or
        AuthenticationError, NotFound, PermanentError (permanent).
        """
        url = self.url(path)
        key = idempotency_key.get()
        if key and method.upper() in MUTATING_METHODS:
            kwargs["headers"] = {"Idempotency-Key": key, **(kwargs.get("headers") or {})}
        response = self._send(method, url, self._client.build_request(method, url, **kwargs))
        if response.status_code in set(ok):
            return response
        self.raise_for_response(method, url, response)
        return response  # pragma: no cover - raise_for_response always raises

    def stream(self, path: str, *, chunk_size: int = 64 * 1024, **kwargs: Any) -> Iterator[bytes]:
        """GET ``path`` and yield its body chunk by chunk, never holding it whole.

        The status is checked before this returns, so the caller can still answer an
        error; the body is read as the iterator is consumed, and closed with it.
        """
        url = self.url(path)
        response = self._send("GET", url, self._client.build_request("GET", url, **kwargs), stream=True)
        if response.status_code != 200:
            response.read()
            response.close()
            self.raise_for_response("GET", url, response)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.iter_bytes(chunk_size)
            except httpx.TimeoutException:
                raise Timeout(f"GET {safe_url(url)} timed out while reading") from None
            except httpx.HTTPError as exc:
                raise Unreachable(f"GET {safe_url(url)}: the download broke off ({type(exc).__name__})") from None
            finally:
                response.close()

        return chunks()

    def _send(self, method: str, url: str, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send, mapping transport failures onto the typed errors (no URL query in messages)."""
        started = time.monotonic()
        status: int | None = None
        try:
            response = self._client.send(request, stream=stream)
            status = response.status_code
            return response
        except (httpx.ConnectTimeout, httpx.PoolTimeout):
            raise Timeout(f"{method} {safe_url(url)} timed out connecting", maybe_sent=False) from None
        except httpx.TimeoutException:
            # The request (or part of it) went out: the platform may have acted.
            raise Timeout(f"{method} {safe_url(url)} timed out", maybe_sent=True) from None
        except httpx.ConnectError as exc:
            raise Unreachable(f"{method} {safe_url(url)}: cannot reach the platform ({type(exc).__name__})") from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # The connection broke after it was open: the request may have reached the platform.
            raise Unreachable(
                f"{method} {safe_url(url)}: the connection broke off ({type(exc).__name__})", maybe_sent=True
            ) from None
        except httpx.HTTPError as exc:
            raise ConnectorError(f"{method} {safe_url(url)}: {type(exc).__name__}") from None
        finally:
            _notify(Exchange(method=method, url=safe_url(url), status_code=status, seconds=time.monotonic() - started))

    def raise_for_response(self, method: str, url: str, response: httpx.Response) -> None:
        status = response.status_code
        where = f"{method} {safe_url(url)}"
        message = f"{where} answered {status}: {short_escaped(self.error_parser(response), 500)}"
        if status in (401, 403):
            raise AuthenticationError(message, status_code=status)
        if status == 404:
            raise NotFound(message, status_code=status)
        if status == 429:
            raise RateLimited(message, retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            raise ServerError(message, status_code=status)
        if 400 <= status < 500:
            raise PermanentError(message, status_code=status)
        raise InvalidResponse(f"{where} answered an unexpected {status}", status_code=status)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and decode a JSON body, or raise InvalidResponse."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise InvalidResponse(f"{method} {safe_url(self.url(path))} did not answer JSON") from None

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_file(
    stream: Any, *, start: int = 0, length: int | None = None, chunk_size: int = 1024 * 1024
) -> Iterator[bytes]:
    """Yield ``length`` bytes of a binary stream from ``start``, a chunk at a time."""
    if start:
        stream.seek(start)
    remaining = length
    while remaining is None or remaining > 0:
        size = chunk_size if remaining is None else min(chunk_size, remaining)
        block = stream.read(size)
        if not block:
            break
        if remaining is not None:
            remaining -= len(block)
        yield block


__all__ = [
    "Exchange",
    "HttpClient",
    "ConnectorError",
    "add_observer",
    "remove_observer",
    "default_error_message",
    "iter_file",
    "parse_retry_after",
    "safe_url",
]
