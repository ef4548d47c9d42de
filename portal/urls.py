from django.urls import path

from portal.views.account import account
from portal.views.attention import release_step_resolve
from portal.views.automation import channel_add, channel_delete, schedule_edit
from portal.views.bulk import history_bulk
from portal.views.connections import (
    connection_add,
    connection_detail,
    connection_edit,
    connection_list,
    connection_state,
    connection_test,
    connection_test_status,
)
from portal.views.dashboard import dashboard
from portal.views.datasets import dataset_add, dataset_detail, dataset_edit, dataset_list, dataset_state
from portal.views.history import history_export
from portal.views.jump import jump
from portal.views.mappings import mapping_add, mapping_detail, mapping_edit, mapping_state
from portal.views.ops import metrics, ops, ops_releases
from portal.views.platform import (
    action,
    action_run_status,
    browse,
    params_diff,
    params_edit,
    step_download,
    target_preview,
)
from portal.views.preflight import release_preflight_view
from portal.views.release_log import release_log_download, release_log_earlier
from portal.views.release_sets import (
    release_set_cancel_view,
    release_set_detail,
    release_set_list,
    release_set_matrix,
    release_set_new,
    release_set_retry_view,
)
from portal.views.releases import history, release_cancel, release_create, release_detail, release_retry, release_status
from portal.views.teams import member_update, team_detail, team_list
from portal.views.uploads import upload_create

app_name = "portal"

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("connections/", connection_list, name="connection-list"),
    path("connections/add/", connection_add, name="connection-add"),
    path("connections/<int:pk>/", connection_detail, name="connection-detail"),
    path("connections/<int:pk>/edit/", connection_edit, name="connection-edit"),
    path("connections/<int:pk>/test/", connection_test, name="connection-test"),
    path("connections/<int:pk>/test/status/", connection_test_status, name="connection-test-status"),
    path("connections/<int:pk>/state/<str:state>/", connection_state, name="connection-state"),
    path("datasets/", dataset_list, name="dataset-list"),
    path("datasets/add/", dataset_add, name="dataset-add"),
    path("datasets/<int:pk>/", dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/edit/", dataset_edit, name="dataset-edit"),
    path("datasets/<int:pk>/state/<str:state>/", dataset_state, name="dataset-state"),
    path("datasets/<int:dataset_pk>/upload/", upload_create, name="upload-create"),
    path("datasets/<int:dataset_pk>/mappings/add/", mapping_add, name="mapping-add"),
    path("mappings/<int:pk>/", mapping_detail, name="mapping-detail"),
    path("mappings/<int:pk>/edit/", mapping_edit, name="mapping-edit"),
    path("mappings/<int:pk>/state/<str:state>/", mapping_state, name="mapping-state"),
    path("mappings/<int:mapping_pk>/release/", release_create, name="release-create"),
    path(
        "mappings/<int:mapping_pk>/release/preflight/",
        release_preflight_view,
        name="release-preflight",
    ),
    path("releases/", history, name="history"),
    path("releases/export/<str:fmt>/", history_export, name="history-export"),
    path("releases/bulk/", history_bulk, name="history-bulk"),
    path("releases/<int:pk>/", release_detail, name="release-detail"),
    path("releases/<int:pk>/status/", release_status, name="release-status"),
    path("releases/<int:pk>/cancel/", release_cancel, name="release-cancel"),
    path("releases/<int:pk>/log/", release_log_earlier, name="release-log-earlier"),
    path("releases/<int:pk>/log/download/", release_log_download, name="release-log-download"),
    path(
        "releases/<int:pk>/steps/<int:step_pk>/<str:decision>/",
        release_step_resolve,
        name="release-step-resolve",
    ),
    path("mappings/<int:pk>/actions/<str:name>/", action, {"scope": "mapping"}, name="mapping-action"),
    path(
        "connections/<int:pk>/actions/<str:name>/",
        action,
        {"scope": "connection"},
        name="connection-action",
    ),
    path("action-runs/<int:pk>/", action_run_status, name="action-run"),
    path("connections/<int:pk>/browse/<str:field>/", browse, name="browse"),
    path("connections/<int:pk>/target-preview/", target_preview, name="target-preview"),
    path("mappings/<int:pk>/params/", params_edit, name="params-edit"),
    path("mappings/<int:pk>/params/diff/", params_diff, name="params-diff"),
    path("steps/<int:pk>/download/<str:fmt>/", step_download, name="step-download"),
    path("account/", account, name="account"),
    path("jump/", jump, name="jump"),
    path("datasets/<int:dataset_pk>/release-set/", release_set_new, name="release-set-new"),
    path("sets/", release_set_list, name="release-set-list"),
    path("sets/<int:pk>/", release_set_detail, name="release-set-detail"),
    path("sets/<int:pk>/matrix/", release_set_matrix, name="release-set-matrix"),
    path("sets/<int:pk>/cancel/", release_set_cancel_view, name="release-set-cancel"),
    path("sets/<int:pk>/retry/", release_set_retry_view, name="release-set-retry"),
    path("sets/<int:pk>/retry/<int:mapping_pk>/", release_set_retry_view, name="release-set-retry-one"),
    path("mappings/<int:pk>/schedule/", schedule_edit, name="schedule-edit"),
    path("mappings/<int:pk>/channels/", channel_add, {"scope": "mapping"}, name="mapping-channel-add"),
    path("teams/<int:pk>/channels/", channel_add, {"scope": "team"}, name="team-channel-add"),
    path("channels/<int:pk>/delete/", channel_delete, name="channel-delete"),
    path("releases/<int:pk>/retry/", release_retry, name="release-retry"),
    path("teams/", team_list, name="team-list"),
    path("teams/<int:pk>/", team_detail, name="team-detail"),
    path("members/<int:pk>/", member_update, name="member-update"),
    path("ops/", ops, name="ops"),
    path("ops/releases/<str:what>/", ops_releases, name="ops-releases"),
    path("metrics", metrics, name="metrics"),
]
