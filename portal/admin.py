"""Every model in the Django admin. Connection credentials are excluded: never shown, never edited here."""

from django.contrib import admin
from django.http import HttpRequest

from portal.models import (
    ActionRun,
    Alert,
    ApiToken,
    AuditEvent,
    ChunkedUpload,
    Connection,
    Dataset,
    Mapping,
    MappingSchedule,
    Membership,
    NotificationChannel,
    NotificationDelivery,
    ParamsVersion,
    Release,
    ReleaseDay,
    ReleaseEvent,
    ReleaseSet,
    ReleaseStep,
    Team,
    TusUpload,
    Upload,
)
from portal.selectors.paginators import EstimatedCountPaginator


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role"]
    list_filter = ["role", "team"]


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "platform", "team", "state", "last_test_ok", "last_test_at"]
    list_filter = ["platform", "state", "team"]
    exclude = ["credentials_encrypted"]
    # base_url is read-only here: a new destination must clear the secrets (services.connection_update).
    readonly_fields = ["base_url", "test_requested_at", "last_test_at", "last_test_ok", "last_test_message"]


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "state", "created_at"]
    list_filter = ["state", "team"]


@admin.register(Mapping)
class MappingAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "connection", "state"]
    list_filter = ["state", "connection__platform"]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["original_name", "dataset", "size", "uploaded_by", "created_at"]
    readonly_fields = ["sha256", "size"]


class ReleaseStepInline(admin.TabularInline):
    model = ReleaseStep
    extra = 0
    fields = ("position", "label", "status", "remote_ref", "remote_status", "attempts", "checks", "error")
    readonly_fields = fields


class LargeTableAdmin(admin.ModelAdmin):
    """Lists of millions of rows: no COUNT(*) for the paginator nor for the "N total" link."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50  # half the default: the page's cost is rendering its rows


@admin.register(Release)
class ReleaseAdmin(LargeTableAdmin):
    list_display = ["id", "mapping", "platform", "status", "created_by", "created_at"]
    list_select_related = ["mapping__dataset", "created_by"]
    list_filter = ["status", "platform"]
    inlines = [ReleaseStepInline]
    raw_id_fields = ["mapping", "dataset", "upload"]


@admin.register(ReleaseStep)
class ReleaseStepAdmin(LargeTableAdmin):
    list_display = ["release", "position", "label", "status", "remote_ref"]
    list_select_related = ["release__mapping__dataset"]
    list_filter = ["status"]
    raw_id_fields = ["release"]


@admin.register(ReleaseEvent)
class ReleaseEventAdmin(LargeTableAdmin):
    list_display = ["release", "level", "message", "created_at"]
    list_select_related = ["release__mapping__dataset"]
    raw_id_fields = ["release", "step"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "object_type", "object_repr"]
    list_filter = ["action"]
    readonly_fields = ["team", "actor", "action", "object_type", "object_id", "object_repr", "changes", "created_at"]


@admin.register(ReleaseSet)
class ReleaseSetAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "created_by", "created_at"]
    raw_id_fields = ["dataset", "upload"]


@admin.register(ParamsVersion)
class ParamsVersionAdmin(admin.ModelAdmin):
    list_display = ["mapping", "number", "note", "created_by", "created_at"]
    raw_id_fields = ["mapping"]


@admin.register(ActionRun)
class ActionRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "label", "connection", "mapping", "status", "requested_by"]
    list_filter = ["status", "action"]
    raw_id_fields = ["connection", "mapping"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Only the token's hash is stored, and even that is not shown here."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]


@admin.register(ChunkedUpload)
class ChunkedUploadAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "dataset", "user", "offset", "size", "created_at"]
    readonly_fields = ["parts"]


@admin.register(MappingSchedule)
class MappingScheduleAdmin(admin.ModelAdmin):
    list_display = ["mapping", "cron", "enabled", "last_run_at", "last_outcome"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["kind", "target", "team", "mapping", "on_failure", "on_success", "enabled"]
    exclude = ["secret_encrypted"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "channel", "release", "event", "attempt", "status", "response_code"]
    list_filter = ["status", "event"]
    raw_id_fields = ["release"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["fired_at", "kind", "key", "message", "resolved_at", "notify_done", "delivery_error"]
    list_filter = ["kind", "notify_done"]
    raw_id_fields = ["release", "connection"]


@admin.register(TusUpload)
class TusUploadAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "dataset", "user", "offset", "length", "sink", "upload", "expires_at"]
    readonly_fields = ["sink_state", "hash_state", "storage_name", "offset", "length", "locked_until", "upload"]


@admin.register(ReleaseDay)
class ReleaseDayAdmin(admin.ModelAdmin):
    """The daily roll-ups (portal.rollups): read-only, rewritten by the periodic task."""

    list_display = ["day", "team", "platform", "mapping", "status", "count", "finished"]
    list_filter = ["platform", "status"]
    list_select_related = ["team", "mapping__dataset"]
    date_hierarchy = "day"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
