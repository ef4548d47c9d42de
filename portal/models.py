"""The portal's data: teams, connections, datasets, mappings, uploads and releases.

Writes go through ``portal.services`` (and the release engine, ``portal.engine``);
reads through ``portal.selectors``. Models hold data and small derived properties only.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from connectors.registry import get_connector_class, platform_choices
from portal.crypto import decrypt_json
from portal.token_cache import RedisTokenStore

if TYPE_CHECKING:
    from connectors.base import Connector, Schema


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


class ObjectState(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DISABLED = "disabled", "Disabled"
    ARCHIVED = "archived", "Archived"


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique_user_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class Connection(models.Model):
    """Credentials for one account on one platform. ``credentials_encrypted`` is never shown."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="connections")
    platform = models.CharField(max_length=30, choices=platform_choices())
    name = models.CharField(max_length=100)
    base_url = models.URLField(max_length=500)
    credentials_encrypted = models.TextField(editable=False)
    state = models.CharField(max_length=10, choices=ObjectState.choices, default=ObjectState.ENABLED)
    # Connection test: requested by the user, run by a worker, read by the page.
    test_requested_at = models.DateTimeField(null=True, blank=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="connection_unique_name_per_team")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_platform_display()})"

    def get_absolute_url(self) -> str:
        return reverse("portal:connection-detail", args=[self.pk])

    @property
    def connector_class(self) -> type[Connector[Any, Any, Any]]:
        return get_connector_class(self.platform)

    def credentials(self) -> Schema:
        """Decrypt and validate. Raises InvalidToken on a wrong key, never returns garbage."""
        return self.connector_class.Credentials.model_validate(decrypt_json(self.credentials_encrypted))

    def connector(self, *, interactive: bool = False) -> Connector[Any, Any, Any]:
        """The platform's connector; use it as ``with connection.connector() as c:`` so its HTTP clients close.

        ``interactive`` is for reads made inside a web request, which a person waits on: they get
        the short ``PORTAL_HTTP_READ_TIMEOUT_SECONDS`` instead of the workers' ``PORTAL_HTTP_TIMEOUT_SECONDS``.
        """
        timeout = settings.PORTAL_HTTP_READ_TIMEOUT_SECONDS if interactive else settings.PORTAL_HTTP_TIMEOUT_SECONDS
        connector = self.connector_class(self.credentials(), base_url=self.base_url, timeout=timeout)
        # Tokens the platform hands out are shared by every task of this connection (issue 14).
        connector.token_store = RedisTokenStore(connection_id=self.pk, credentials_encrypted=self.credentials_encrypted)
        return connector

    @property
    def test_pending(self) -> bool:
        return self.test_requested_at is not None and (
            self.last_test_at is None or self.last_test_at < self.test_requested_at
        )


class Dataset(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=10, choices=ObjectState.choices, default=ObjectState.ENABLED)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="dataset_unique_name_per_team")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("portal:dataset-detail", args=[self.pk])


class Mapping(models.Model):
    """A dataset published to a target of one connection. ``target`` is validated by the connector."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="mappings")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="mappings")
    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="mappings")
    name = models.CharField(max_length=100)
    target = models.JSONField(default=dict)
    # The current saved parameters (the newest ParamsVersion), the release form's defaults.
    default_params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=ObjectState.choices, default=ObjectState.ENABLED)
    # For platforms with remote toggles: the state the platform last confirmed.
    remote_state = models.CharField(max_length=10, choices=ObjectState.choices, blank=True)
    remote_state_at = models.DateTimeField(null=True, blank=True)
    # Seconds a waiting step may wait, by step name (or "*"), over the connector's defaults.
    wait_deadlines = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset__name", "name"]
        constraints = [models.UniqueConstraint(fields=["dataset", "name"], name="mapping_unique_name_per_dataset")]

    def __str__(self) -> str:
        return f"{self.dataset.name} → {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("portal:mapping-detail", args=[self.pk])

    @property
    def platform(self) -> str:
        return self.connection.platform

    def target_schema(self) -> Schema:
        return self.connection.connector_class.Target.model_validate(self.target)

    def release_refusal(self) -> str | None:
        """Why the pages offer no Release for this mapping, or None."""
        if self.connection.state != ObjectState.ENABLED:
            return f"its connection {self.connection.name} is {self.connection.state}"
        try:
            return self.connection.connector_class.release_refusal(self.target_schema())
        except Exception:  # an old target that no longer validates: the release form says why
            return None

    def target_fields(self) -> list[tuple[str, Any]]:
        """(title, value) of the target's non-empty fields, for display."""
        fields = self.connection.connector_class.Target.model_fields

        def text(value: Any) -> str:
            if isinstance(value, list):
                return ", ".join(map(str, value))
            return json.dumps(value) if isinstance(value, dict) else str(value)

        return [
            (fields[k].title or k if k in fields else k, text(v))
            for k, v in self.target.items()
            if v not in (None, "", [], {})
        ]

    def target_label(self) -> str:
        try:
            return self.connection.connector_class.describe_target(self.target_schema())
        except Exception:  # an old target that no longer validates still gets a label
            return ", ".join(f"{k}={v}" for k, v in self.target.items())


def upload_path(instance: Upload, filename: str) -> str:
    # Server-generated names: the original name is kept in a column, never on disk.
    return f"uploads/team-{instance.team_id}/{timezone.now():%Y/%m}/{uuid.uuid4().hex}"


class Upload(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="uploads")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to=upload_path, max_length=300)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_type = models.CharField(max_length=100, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_name

    @property
    def extension(self) -> str:
        return self.original_name.rsplit(".", 1)[-1].lower() if "." in self.original_name else ""


class ReleaseSet(models.Model):
    """One upload released to several mappings at once; each mapping runs its own release.

    Its status is derived from its releases (the latest attempt of each mapping)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="release_sets")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="release_sets")
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.PROTECT, related_name="release_sets")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    idempotency_key = models.CharField(max_length=100, blank=True)
    # sha256 of the API request that used the key: the same key with another body is refused (422).
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="release_set_unique_idempotency_key",
            )
        ]
        indexes = [models.Index(fields=["team", "-created_at", "-id"], name="release_set_recent")]

    def __str__(self) -> str:
        return f"Release set #{self.pk} of {self.dataset}"

    def get_absolute_url(self) -> str:
        return reverse("portal:release-set-detail", args=[self.pk])

    def current_releases(self) -> list[Release]:
        """The latest attempt of each mapping, in mapping order."""
        latest: dict[int, Release] = {}
        # A list of sets prefetches its releases (apis.ReleaseSetList): use them, not a query per set.
        prefetched = "releases" in getattr(self, "_prefetched_objects_cache", {})
        releases = self.releases.all() if prefetched else self.releases.select_related("mapping__connection")
        for release in sorted(releases, key=lambda r: (r.created_at, r.pk)):
            latest[release.mapping_id] = release
        return sorted(latest.values(), key=lambda r: (r.mapping.name, r.mapping_id))

    @staticmethod
    def status_of(releases: list[Release]) -> str:
        statuses = {r.status for r in releases}
        if statuses & {"queued", "running", "attention"}:  # attention: a person decides, then it goes on
            return "running"
        if statuses == {"succeeded"}:
            return "succeeded"
        if "succeeded" in statuses:
            return "partial"
        return "cancelled" if statuses == {"cancelled"} else "failed"


class ReleaseStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    # A step's outcome is unknown and the platform cannot say: a person decides (issue 14).
    ATTENTION = "attention", "Needs attention"


TERMINAL_RELEASE = {ReleaseStatus.SUCCEEDED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED}


class Release(models.Model):
    """One run of a mapping. ``platform`` and ``dataset`` are copied from the mapping so the
    history filters on indexed columns of this table alone, fast at millions of rows."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="releases")
    mapping = models.ForeignKey(Mapping, on_delete=models.PROTECT, related_name="releases")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="releases")
    platform = models.CharField(max_length=30, choices=platform_choices())
    upload = models.ForeignKey(Upload, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=ReleaseStatus.choices, default=ReleaseStatus.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=20, default="manual")
    # Unique per team when set: a second submission of the same form returns the same release.
    idempotency_key = models.CharField(max_length=100, blank=True)
    # sha256 of the API request that used the key: the same key with another body is refused (422).
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Handed to the connector as StepContext.release_key (e.g. Toucan's dzuuid).
    key = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # A retry is a new release of the failed steps only; the first attempt keeps its history.
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    schedule = models.ForeignKey(
        "MappingSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="releases"
    )
    release_set = models.ForeignKey(
        ReleaseSet, null=True, blank=True, on_delete=models.CASCADE, related_name="releases"
    )
    # When the task last enqueued for this release is due; None once a task picked it up.
    # The sweeper re-dispatches only releases with no task pending (issue 14).
    dispatch_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="release_unique_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["team", "-created_at", "-id"], name="release_history"),
            # For users in several teams (team_id IN (...)): walk this index in order and filter.
            models.Index(fields=["-created_at", "-id"], name="release_history_all"),
            models.Index(fields=["team", "status", "-created_at", "-id"], name="release_history_status"),
            models.Index(fields=["team", "platform", "-created_at", "-id"], name="release_history_platform"),
            models.Index(fields=["dataset", "-created_at", "-id"], name="release_history_dataset"),
            models.Index(fields=["created_by", "-created_at", "-id"], name="release_history_user"),
            # A mapping's page, its latest release (dashboard) and search by mapping name.
            models.Index(fields=["mapping", "-created_at", "-id"], name="release_history_mapping"),
            # PostgreSQL also has trigram indexes on UPPER(error) and on dataset and mapping
            # names for search; they live in migration 0006 only (SQLite has none), docs/scale.md.
        ]

    def __str__(self) -> str:
        return f"Release #{self.pk} of {self.mapping}"

    def get_absolute_url(self) -> str:
        return reverse("portal:release-detail", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RELEASE

    @property
    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class StepStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting on platform"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"
    # The call may have reached the platform; the engine asks it what happened (reconcile).
    UNKNOWN = "unknown", "Checking what happened"
    # The platform cannot say whether the call happened: a person decides.
    ATTENTION = "attention", "Needs attention"


OPEN_STEP = {StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING, StepStatus.UNKNOWN, StepStatus.ATTENTION}


class ReleaseStep(models.Model):
    """One step of a release; the row the engine claims, updates and the page reads."""

    # Set by the release page for its template (portal/views/releases.py), never stored.
    tables: list[Any]
    downloads: list[Any]

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    label = models.CharField(max_length=200)
    idempotent = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.PENDING)
    remote_ref = models.CharField(max_length=300, blank=True)
    remote_status = models.CharField(max_length=100, blank=True)
    message = models.CharField(max_length=500, blank=True)
    output = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)  # calls of run_step
    checks = models.PositiveIntegerField(default=0)  # calls of check_step
    transient_failures = models.PositiveIntegerField(default=0)  # in a row; reset by any success
    next_check_at = models.DateTimeField(null=True, blank=True)  # when the engine looks again
    lease_until = models.DateTimeField(null=True, blank=True)  # a worker holds the step until then
    # Fencing token: bumped by every claim; a worker's writes carry it, so a stale worker's are discarded.
    fence = models.PositiveIntegerField(default=0)
    # A waiting step fails past this (the connector's default for the step, or the mapping's).
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Bumped by "Send again": part of the idempotency key sent to the platform.
    sends = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["release", "position"]
        constraints = [models.UniqueConstraint(fields=["release", "position"], name="step_unique_position")]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="step_due"),
            # Search by remote reference: equality and prefix (LIKE 'ref%') on PostgreSQL.
            models.Index(fields=["remote_ref"], name="step_remote_ref", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class ReleaseEvent(models.Model):
    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="events")
    step = models.ForeignKey(ReleaseStep, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        # The release page reads a log's tail and pages back by id (portal.release_log).
        indexes = [models.Index(fields=["release", "id"], name="event_release_id")]

    def __str__(self) -> str:
        return self.message[:80]


class ParamsVersion(models.Model):
    """Every saved version of a mapping's default parameters (e.g. a DataHQ source spec)."""

    mapping = models.ForeignKey(Mapping, on_delete=models.CASCADE, related_name="params_versions")
    number = models.PositiveIntegerField()
    params = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["mapping", "-number"]
        constraints = [models.UniqueConstraint(fields=["mapping", "number"], name="params_version_unique_number")]

    def __str__(self) -> str:
        return f"v{self.number} of {self.mapping}"

    @property
    def team_id(self) -> int:
        return self.mapping.team_id


class ActionRun(models.Model):
    """One run of a mutating platform action (reset a workflow, archive a query...), done by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="action_runs")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="action_runs")
    mapping = models.ForeignKey(Mapping, null=True, blank=True, on_delete=models.CASCADE, related_name="action_runs")
    action = models.CharField(max_length=50)
    label = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    message = models.TextField(blank=True)
    tables = models.JSONField(default=list, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.label} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status != self.Status.QUEUED


class AuditEvent(models.Model):
    """Who did what to which object, and when. ``changes`` never holds a secret value."""

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=50)
    object_type = models.CharField(max_length=50)
    object_id = models.CharField(max_length=50)
    object_repr = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "-created_at"], name="audit_recent")]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.object_type} {self.object_repr}"

    def summary(self) -> dict[str, Any]:
        return {"action": self.action, "object": f"{self.object_type}:{self.object_id}", "changes": self.changes}


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once, at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)  # shown in lists so a user can tell tokens apart
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # chosen at creation; null for older tokens

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class ChunkedUpload(models.Model):
    """A large upload sent in pieces, resumable after a cut: each piece is its own storage object."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    parts = models.JSONField(default=list)  # storage names, in order
    upload = models.OneToOneField(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.filename} ({self.offset}/{self.size})"


class MappingSchedule(models.Model):
    """A cron schedule releasing a mapping with its latest upload and saved parameters.

    The django-celery-beat PeriodicTask it owns is what beat fires."""

    mapping = models.OneToOneField(Mapping, on_delete=models.CASCADE, related_name="schedule")
    cron = models.CharField(max_length=100, help_text="minute hour day-of-month month day-of-week, e.g. 0 6 * * 1-5")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"{self.cron} for {self.mapping}"

    @property
    def team_id(self) -> int:
        return self.mapping.team_id


class NotificationChannel(models.Model):
    """Where release outcomes go: per team, or per mapping (which then replaces the team's)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_channels")
    mapping = models.ForeignKey(
        Mapping, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_channels"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    target = models.CharField(max_length=500, help_text="Email addresses (comma-separated) or the webhook URL")
    secret_encrypted = models.TextField(blank=True, editable=False)  # the webhook's HMAC key
    on_failure = models.BooleanField(default=True)
    on_success = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.target}"


class NotificationDelivery(models.Model):
    """One attempt to deliver one release outcome to one channel."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=20)
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} #{self.attempt} to {self.channel}: {self.status}"


class Alert(models.Model):
    """An operations alert (``portal.alerts``): open while its condition holds, at most one open per
    ``key``; its channels are told once when it fires and once when it clears."""

    class Kind(models.TextChoices):
        STEP_OVERDUE = "step_overdue", "Step overdue"
        WORKER_SILENT = "worker_silent", "Worker silent"
        BEAT_SILENT = "beat_silent", "Beat silent"
        PLATFORM_ERRORS = "platform_errors", "Platform errors"
        CONNECTION_FAILING = "connection_failing", "Connection failing"

    key = models.CharField(max_length=200)  # what it is about: "worker:celery@host", "step:42"...
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # None: a global alert (workers, beat, platforms), sent to PORTAL_ALERTS["TEAMS"] (or every team).
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    platform = models.CharField(max_length=30, blank=True)
    message = models.CharField(max_length=500)
    fired_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Channel ids that took each message ({"fired": [...], "resolved": [...]}), so a retry sends only the rest.
    notified = models.JSONField(default=dict, blank=True)
    notify_attempts = models.PositiveSmallIntegerField(default=0)  # of the pending message; reset when it changes
    notify_done = models.BooleanField(default=False)  # the pending message went out (or was given up)
    delivery_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(resolved_at__isnull=True), name="alert_one_open_per_key"
            )
        ]
        indexes = [models.Index(fields=["notify_done"], name="alert_pending_notice")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:80]}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class TusUpload(models.Model):
    """A tus upload in flight: how many bytes arrived, the running SHA-256 and the sink's state.

    Once complete it points at its ``Upload`` (so a client that lost the last answer sees the
    full offset) until the expiry task removes it with the unfinished ones."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    length = models.BigIntegerField()
    offset = models.BigIntegerField(default=0)
    storage_name = models.CharField(max_length=300)  # where the finished file lands, server-generated
    sink = models.CharField(max_length=20)  # "filesystem" or "s3"
    sink_state = models.JSONField(default=dict, blank=True)  # S3: multipart upload id, parts, buffered tail
    hash_state = models.BinaryField()  # portal.uploads.hashstate.ResumableSha256.state()
    locked_until = models.DateTimeField(null=True, blank=True)  # one PATCH at a time, without a transaction
    upload = models.OneToOneField(Upload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.filename} ({self.offset}/{self.length})"


class ReleaseDay(models.Model):
    """Releases of one day, rolled up per (team, mapping, platform, status), and per (team,
    platform, status) with ``mapping`` None, by a periodic task
    (``portal.rollups``), so that 30-day charts read a few thousand rows instead of millions.

    ``durations`` counts the finished releases per bucket of ``rollups.DURATION_BUCKETS``, which
    gives percentiles over any set of days to the precision of a bucket (docs/scale.md)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    # None: the row sums every mapping of the team on that platform (what the 30-day charts read).
    mapping = models.ForeignKey(Mapping, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    platform = models.CharField(max_length=30)
    status = models.CharField(max_length=10, choices=ReleaseStatus.choices)
    count = models.PositiveIntegerField()
    finished = models.PositiveIntegerField(default=0)
    duration_seconds_sum = models.FloatField(default=0.0)
    durations = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "mapping", "platform", "status"], name="release_day_unique")
        ]
        indexes = [
            models.Index(fields=["team", "day"], name="release_day_team"),
            models.Index(fields=["mapping", "day"], name="release_day_mapping"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.mapping_id} {self.status}: {self.count}"
