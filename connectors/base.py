"""The connector contract every platform implements.

A connector knows one platform's API and nothing of Django: it takes validated
credentials, a base URL and plain arguments, and returns small typed results.
The release engine (``portal/engine.py``) is the only caller of the step methods.

Errors: a connector raises only ``ConnectorError`` and its subclasses. ``permanent``
says whether trying again can help; the engine retries the others with backoff.

A release is a list of ``StepSpec`` returned by ``plan()``. For each step the engine
calls ``run_step()`` once; it either finishes (``Done``), ends in a remote failure
(``Failed``), or started something remote to check later (``Waiting`` with the
platform's reference, which the engine stores before anything else). The engine then
calls ``check_step()`` from rescheduled tasks until the step is ``Done`` or ``Failed``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import IO, Any, ClassVar, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, SecretStr


class Closable(Protocol):
    """What a connector owns and closes with itself (its HTTP clients: connectors/http.py, which
    imports this module, so the contract names the behaviour, not the class)."""

    def close(self) -> None: ...


# ERRORS


class ConnectorError(Exception):
    """An error talking to a platform. ``permanent`` errors are not retried.

    The message is shown to users: it never carries a secret, a header or a signed URL.
    """

    permanent: bool = False
    #: The request may have reached the platform before this error (a read timeout, a
    #: connection dropped after sending): for a mutating call the outcome is unknown.
    maybe_sent: bool = False

    def __init__(
        self,
        message: str,
        *,
        permanent: bool | None = None,
        status_code: int | None = None,
        maybe_sent: bool | None = None,
    ):
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent
        if maybe_sent is not None:
            self.maybe_sent = maybe_sent
        self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class PermanentError(ConnectorError):
    """The platform refused the request (a 4xx): sending it again gives the same answer."""

    permanent = True


class AuthenticationError(PermanentError):
    """The credentials were refused (401/403, or the platform's own way of saying so)."""


class NotFound(PermanentError):
    """The platform does not know the object (a 404)."""


class RateLimited(ConnectorError):
    """The platform asked us to slow down (429). ``retry_after`` is its Retry-After, in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, status_code: int | None = 429):
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class Timeout(ConnectorError):
    """The platform did not answer in time."""


class Unreachable(ConnectorError):
    """The platform could not be reached (DNS, refused connection, reset)."""


class ServerError(ConnectorError):
    """The platform failed (a 5xx): transient."""


class NotSupported(PermanentError):
    """The platform has no API for this action."""


class InvalidResponse(PermanentError):
    """The platform answered something this connector cannot read."""


# SCHEMAS


class Schema(BaseModel):
    """Base of every Credentials, Target and Params model.

    Fields carry their label as ``title`` and their help text as ``description``.
    Secret fields are typed ``SecretStr``: the portal encrypts them, never renders
    them back and pydantic masks them in ``repr``. ``json_schema_extra={"widget": ...}``
    may ask for a widget ("textarea", "password", "hidden").
    """

    # hide_input_in_errors: a ValidationError must never print a submitted secret.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True, hide_input_in_errors=True)


class NoParams(Schema):
    """For platforms whose releases take no parameters."""


# FILES


@dataclasses.dataclass(frozen=True)
class FilePayload:
    """An uploaded file, opened by the connector only when it sends it.

    ``open`` returns a fresh binary stream (from Django storage, which may be remote):
    read it in chunks, never whole.
    """

    name: str
    size: int
    sha256: str
    open: Callable[[], IO[bytes]]
    content_type: str = "application/octet-stream"


# RELEASE STEPS


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """One step of a release, as planned by ``Connector.plan()``.

    ``name`` is stable and unique within the release. ``idempotent`` is True for a step
    that does no harm when run twice (a read, an upload that overwrites): the engine
    runs it again after a crash. Any other step that was interrupted after its call
    went out is never repeated blindly: it fails and says so.
    """

    name: str
    label: str
    idempotent: bool = False
    #: This step sends the release's file: a release planned with it needs an upload.
    sends_file: bool = False


@dataclasses.dataclass(frozen=True)
class StepContext[TargetT: Schema, ParamsT: Schema]:
    """What a step needs, handed in by the engine.

    ``release_key`` is unique to the release and stable across retries (use it as an
    idempotency key or upload id). ``results`` holds the outputs of earlier steps by name.
    ``remote_ref`` and ``output`` are this step's own, from ``run_step`` and earlier checks.
    """

    target: TargetT
    params: ParamsT
    release_key: str
    file: FilePayload | None = None
    results: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    remote_ref: str = ""
    output: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    checks: int = 0
    #: Derived from the release and the step (and changed only when a person asks to send it
    #: again): send it where the platform honours an idempotency key.
    idempotency_key: str = ""
    #: When ``run_step`` was first called for this step (a Unix time), for ``reconcile_step``
    #: to tell the platform's objects made by this step from older ones.
    started_at: float | None = None


@dataclasses.dataclass(frozen=True)
class Done:
    """The step finished well."""

    message: str = ""
    remote_ref: str = ""
    remote_status: str = ""
    output: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Waiting:
    """The platform is working on it; check again later.

    ``remote_ref`` identifies the remote job (run id, operation id...). ``check_after``
    asks for a delay before the next check (seconds); None lets the engine back off.
    ``warning`` is set when the answer is odd (a status the connector does not know):
    the portal records it as a warning event.
    """

    remote_ref: str
    message: str = ""
    remote_status: str = ""
    output: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_after: float | None = None
    warning: str = ""
    #: How long the remote job is expected to take in all (seconds), when the connector
    #: knows: the engine checks near that time instead of backing off blindly.
    expected_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Failed:
    """The remote job ended in failure: the message is the platform's reason."""

    message: str
    remote_ref: str = ""
    remote_status: str = ""
    output: Mapping[str, Any] = dataclasses.field(default_factory=dict)


StepOutcome = Done | Waiting | Failed


@dataclasses.dataclass(frozen=True)
class NotSent:
    """``reconcile_step``'s answer when the platform shows the call never happened: the
    engine may send it again."""

    message: str = ""


ReconcileOutcome = Done | Waiting | Failed | NotSent


def since_start(value: Any, started_at: float | None, *, skew: float = 5.0) -> bool | None:
    """Whether a platform's ISO 8601 timestamp is at or after a step's start (less ``skew``
    seconds of clock difference); None when either is missing or unreadable. A time
    without a zone is taken as UTC."""
    if started_at is None or not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() >= started_at - skew


TargetState = Literal["enabled", "disabled", "archived"]


# WHAT THE PORTAL SHOWS BEYOND STEPS


@dataclasses.dataclass(frozen=True)
class Table:
    """Rows the portal renders as a table (a step's pipelines, a result preview, last runs)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    #: Column holding a status, rendered as a badge.
    status_column: str | None = None


@dataclasses.dataclass(frozen=True)
class Action:
    """A platform operation beyond releases, offered on a mapping's or connection's page.

    ``run_action`` performs it. Read-only actions (``mutating=False``) run in the web
    request, with ``auto`` ones shown when the page opens and refreshed; mutating ones
    run in a worker, are recorded and audited. ``role`` is "view", "operate" or "manage".
    ``confirm`` is asked before running. ``applies_to`` filters by target.
    """

    name: str
    label: str
    scope: Literal["mapping", "connection"] = "mapping"
    role: Literal["view", "operate", "manage"] = "view"
    mutating: bool = False
    auto: bool = False
    params: type[Schema] | None = None
    confirm: str = ""
    description: str = ""
    applies_to: Callable[[Any], bool] | None = None


@dataclasses.dataclass(frozen=True)
class ActionResult:
    message: str = ""
    tables: Sequence[Table] = ()


@dataclasses.dataclass(frozen=True)
class Choice:
    """One option offered by ``browse``; ``fill`` sets other target fields when chosen."""

    value: str
    label: str
    detail: str = ""
    fill: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Download:
    """A result the portal streams to the user (never a platform URL with a key in it)."""

    filename: str
    content_type: str
    chunks: Iterable[bytes]


# TOKENS SHARED ACROSS TASKS


class TokenStore(Protocol):
    """Where a connector keeps a short-lived platform token between tasks (set by the
    portal as ``Connector.token_store``; encrypted there). ``ttl`` is in seconds."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str, *, ttl: float) -> None: ...


# THE CONNECTOR


class Connector[CredentialsT: Schema, TargetT: Schema, ParamsT: Schema]:
    """Base class of every platform connector, generic over its three schemas.

    Subclasses name their schemas twice, as type arguments (for the type checker) and as
    class attributes (for the portal, which builds forms from them)::

        class TonalyticaConnector(Connector[TonalyticaCredentials, TonalyticaTarget, TonalyticaParams]):
            Credentials = TonalyticaCredentials
            ...

    They set the class attributes and implement ``test_connection``, ``plan``,
    ``run_step`` and ``check_step``. They register in ``connectors/registry.py``.

    Lifecycle: a connector owns its HTTP clients (``_own``); ``close()`` closes them, and
    ``with connection.connector() as c:`` closes them on the way out. A connector that
    is not closed leaks its connection pool until garbage collection.

    Validation: the portal validates ``Credentials`` and ``Target`` with
    ``model_validate(data)`` and ``Params`` with ``model_validate(data, context={"target": target})``,
    so a Params validator can check values against the target (e.g. declared parameter
    types). A pydantic ``ValidationError`` becomes form field errors; nothing is sent.
    Platform actions beyond releases (browse, last runs, archive...) are plain public
    methods returning plain data; they raise ConnectorError like everything else.
    """

    slug: ClassVar[str]
    label: ClassVar[str]
    # Not ClassVars: a ClassVar cannot hold a type variable. Subclasses assign them in the class body.
    Credentials: type[CredentialsT]
    Target: type[TargetT]
    Params: type[ParamsT]
    #: Whether a release of this platform sends an uploaded file.
    needs_file: ClassVar[bool] = True
    #: File extensions a release accepts (lower case, no dot); empty means any.
    file_extensions: ClassVar[tuple[str, ...]] = ()
    #: Whether ``set_target_state`` reaches the platform (enable/disable/archive remotely).
    remote_toggles: ClassVar[bool] = False
    #: Platform operations offered on pages (see ``Action``); performed by ``run_action``.
    actions: ClassVar[tuple[Action, ...]] = ()
    #: Templates get the class itself: read its attributes, never instantiate it.
    do_not_call_in_templates: ClassVar[bool] = True

    #: Set by the portal: a store that keeps fetched tokens across tasks (None: in memory only).
    token_store: TokenStore | None = None

    def __init__(self, credentials: CredentialsT, *, base_url: str, timeout: float = 30.0):
        """``timeout`` bounds each network operation (connect, each read, each write), in seconds.

        The portal passes a short one for reads made inside a web request and a longer one in workers.
        """
        self.credentials = credentials
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._clients: list[Closable] = []

    # Lifecycle

    def _own[C: Closable](self, client: C) -> C:
        """Register an HTTP client for ``close()``; returns it."""
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Close the connector's HTTP clients. Idempotent; a closed connector must not be used again."""
        while self._clients:
            self._clients.pop().close()

    def closing(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks``, then ``close()``: for a ``Download`` streamed after the caller has returned
        (a streaming response), so the HTTP client closes when the last byte is sent or the client leaves."""
        try:
            yield from chunks
        finally:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @classmethod
    def enabled(cls) -> bool:
        """False when an optional dependency is missing (Redash's ``enabled()``)."""
        return True

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """Names of the credential fields that are secrets (typed ``SecretStr``)."""
        return tuple(
            name
            for name, field in cls.Credentials.model_fields.items()
            if field.annotation in (SecretStr, SecretStr | None)
        )

    # Connection

    @classmethod
    def credential_warnings(cls, credentials: CredentialsT) -> list[str]:
        """Warnings about the credentials that need no network (e.g. a token about to lapse)."""
        return []

    def test_connection(self) -> str:
        """Make the lightest authenticated call. Returns a short human message; raises ConnectorError."""
        raise NotImplementedError

    # Targets

    @classmethod
    def describe_target(cls, target: TargetT) -> str:
        """A one-line human label of a target, shown in lists (no network)."""
        return ", ".join(f"{k}={v}" for k, v in target.model_dump().items() if v not in (None, "", []))

    @classmethod
    def release_refusal(cls, target: TargetT) -> str | None:
        """Why this target can never be released (the page then offers no Release button), or None."""
        return None

    def set_target_state(self, target: TargetT, state: TargetState) -> str:
        """Enable, disable or archive the target on the platform itself.

        Only for connectors with ``remote_toggles``; returns the platform's message.
        """
        raise NotSupported(f"{self.label} has no API to change a target's state")

    # Releases

    @classmethod
    def plan(cls, target: TargetT, params: ParamsT) -> list[StepSpec]:
        """The ordered steps of a release of ``target`` with ``params``. Pure: no network, no credentials."""
        raise NotImplementedError

    def run_step(self, step: StepSpec, ctx: StepContext[TargetT, ParamsT]) -> StepOutcome:
        """Run one step: at most one mutating call, then return at once."""
        raise NotImplementedError

    def check_step(self, step: StepSpec, ctx: StepContext[TargetT, ParamsT]) -> StepOutcome:
        """Check a waiting step (``ctx.remote_ref``). Read-only: safe to repeat."""
        raise NotImplementedError(f"{self.slug} step {step.name} never waits")

    def reconcile_step(self, step: StepSpec, ctx: StepContext[TargetT, ParamsT]) -> ReconcileOutcome:
        """Ask the platform whether the mutating call of ``run_step`` happened, after an
        answer was lost (a timeout, a dropped connection, a worker that died mid-call).

        Return the step's outcome as if ``run_step`` had answered (``Waiting`` with the
        remote job found, ``Done``, ``Failed``) when it happened, ``NotSent`` when the
        platform shows it did not. Raise ``NotSupported`` when the platform cannot say:
        a person then decides. Read-only: safe to repeat.
        """
        raise NotSupported(f"{self.label} cannot tell whether this call reached it")

    #: Seconds a step may wait on the platform before it fails, by step name or name
    #: prefix (the part before ":"), "*" for any other. A mapping may override them.
    wait_deadlines: ClassVar[Mapping[str, float]] = {"*": 6 * 3600.0}

    @classmethod
    def wait_deadline(cls, step_name: str, overrides: Mapping[str, Any] | None = None) -> float:
        """The deadline of a waiting step, in seconds from its start."""
        for table in (overrides or {}, cls.wait_deadlines):
            for key in (step_name, step_name.split(":", 1)[0], "*"):
                value = table.get(key)
                if isinstance(value, int | float) and value > 0:
                    return float(value)
        return 6 * 3600.0

    def cancel_step(self, step: StepSpec, ctx: StepContext[TargetT, ParamsT]) -> str | Failed:
        """Cancel the remote job of a waiting step: a message, or a ``Failed`` whose output
        updates what the step shows. Raises NotSupported where the platform cannot."""
        raise NotSupported(f"{self.label} has no API to cancel a running job")

    # What the portal shows beyond steps

    @classmethod
    def step_tables(cls, step_name: str, output: Mapping[str, Any]) -> list[Table]:
        """Tables to show under a step, from its output (no network): pipelines, a preview..."""
        return []

    @classmethod
    def downloads(cls, step_name: str, output: Mapping[str, Any]) -> list[tuple[str, str]]:
        """(format, label) pairs of results a finished step offers for download."""
        return []

    def download(self, step_name: str, output: Mapping[str, Any], fmt: str) -> Download:
        """Stream one of ``downloads()`` from the platform."""
        raise NotSupported(f"{self.label} offers no download here")

    @classmethod
    def actions_for(cls, scope: str, target: TargetT | None = None) -> list[Action]:
        return [
            a
            for a in cls.actions
            if a.scope == scope and (a.applies_to is None or target is None or a.applies_to(target))
        ]

    @classmethod
    def action(cls, name: str) -> Action:
        for action in cls.actions:
            if action.name == name:
                return action
        raise KeyError(name)

    def run_action(self, action: Action, *, target: TargetT | None, params: Schema | None) -> ActionResult:
        """Perform an action: calls ``action_<name>(target=..., params=...)``."""
        return getattr(self, f"action_{action.name}")(target=target, params=params)

    def check_target(self, target: Schema) -> list[str]:
        """What the platform says is wrong with ``target`` (e.g. a file it does not declare),
        as sentences; [] when it is fine or the platform offers no way to ask. Called when a
        mapping is saved; raises ConnectorError when the platform cannot be asked."""
        return []

    def browse(self, field: str, *, query: str = "", values: Mapping[str, Any] | None = None) -> list[Choice]:
        """Choices for a target field marked ``json_schema_extra={"browse": True}``.

        ``values`` holds what the form has so far (e.g. the dataset GUID whose files to list).
        """
        raise NotSupported(f"{self.label} has nothing to browse for {field}")
