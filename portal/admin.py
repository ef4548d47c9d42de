"""Every model in the Django admin. Connection credentials are excluded: never shown, never edited here."""

from django.contrib import admin

from .models import AuditEvent, Connection, Dataset, Mapping, Membership, Release, ReleaseEvent, ReleaseStep, Team, Upload


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
    readonly_fields = ["test_requested_at", "last_test_at", "last_test_ok", "last_test_message"]


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
    fields = ["position", "label", "status", "remote_ref", "remote_status", "attempts", "checks", "error"]
    readonly_fields = fields


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["id", "mapping", "platform", "status", "created_by", "created_at"]
    list_filter = ["status", "platform"]
    inlines = [ReleaseStepInline]
    raw_id_fields = ["mapping", "dataset", "upload"]


@admin.register(ReleaseStep)
class ReleaseStepAdmin(admin.ModelAdmin):
    list_display = ["release", "position", "label", "status", "remote_ref"]
    list_filter = ["status"]
    raw_id_fields = ["release"]


@admin.register(ReleaseEvent)
class ReleaseEventAdmin(admin.ModelAdmin):
    list_display = ["release", "level", "message", "created_at"]
    raw_id_fields = ["release", "step"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "object_type", "object_repr"]
    list_filter = ["action"]
    readonly_fields = ["team", "actor", "action", "object_type", "object_id", "object_repr", "changes", "created_at"]
