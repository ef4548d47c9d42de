from django.urls import path

from . import platform_views, views

app_name = "portal"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("connections/", views.connection_list, name="connection-list"),
    path("connections/add/", views.connection_add, name="connection-add"),
    path("connections/<int:pk>/", views.connection_detail, name="connection-detail"),
    path("connections/<int:pk>/edit/", views.connection_edit, name="connection-edit"),
    path("connections/<int:pk>/test/", views.connection_test, name="connection-test"),
    path("connections/<int:pk>/test/status/", views.connection_test_status, name="connection-test-status"),
    path("connections/<int:pk>/state/<str:state>/", views.connection_state, name="connection-state"),
    path("datasets/", views.dataset_list, name="dataset-list"),
    path("datasets/add/", views.dataset_add, name="dataset-add"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/edit/", views.dataset_edit, name="dataset-edit"),
    path("datasets/<int:pk>/state/<str:state>/", views.dataset_state, name="dataset-state"),
    path("datasets/<int:dataset_pk>/upload/", views.upload_create, name="upload-create"),
    path("datasets/<int:dataset_pk>/mappings/add/", views.mapping_add, name="mapping-add"),
    path("mappings/<int:pk>/", views.mapping_detail, name="mapping-detail"),
    path("mappings/<int:pk>/edit/", views.mapping_edit, name="mapping-edit"),
    path("mappings/<int:pk>/state/<str:state>/", views.mapping_state, name="mapping-state"),
    path("mappings/<int:mapping_pk>/release/", views.release_create, name="release-create"),
    path("releases/", views.history, name="history"),
    path("releases/<int:pk>/", views.release_detail, name="release-detail"),
    path("releases/<int:pk>/status/", views.release_status, name="release-status"),
    path("releases/<int:pk>/cancel/", views.release_cancel, name="release-cancel"),
    path("mappings/<int:pk>/actions/<str:name>/", platform_views.action, {"scope": "mapping"}, name="mapping-action"),
    path("connections/<int:pk>/actions/<str:name>/", platform_views.action, {"scope": "connection"}, name="connection-action"),
    path("action-runs/<int:pk>/", platform_views.action_run_status, name="action-run"),
    path("connections/<int:pk>/browse/<str:field>/", platform_views.browse, name="browse"),
    path("connections/<int:pk>/target-preview/", platform_views.target_preview, name="target-preview"),
    path("mappings/<int:pk>/params/", platform_views.params_edit, name="params-edit"),
    path("mappings/<int:pk>/params/diff/", platform_views.params_diff, name="params-diff"),
    path("steps/<int:pk>/download/<str:fmt>/", platform_views.step_download, name="step-download"),
    path("teams/", views.team_list, name="team-list"),
    path("teams/<int:pk>/", views.team_detail, name="team-detail"),
    path("members/<int:pk>/", views.member_update, name="member-update"),
]
