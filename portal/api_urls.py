from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import apis, attention_views, ledger_apis

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's settings as a script of its own (no inline script: CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("connections/", apis.ConnectionList.as_view(), name="api-connections"),
    path("connections/<int:pk>/", apis.ConnectionDetail.as_view(), name="api-connection"),
    path("connections/<int:pk>/test/", apis.ConnectionTest.as_view(), name="api-connection-test"),
    path("connections/<int:pk>/state/", apis.ConnectionState.as_view(), name="api-connection-state"),
    path("connections/<int:pk>/browse/<str:field>/", apis.ConnectionBrowse.as_view(), name="api-connection-browse"),
    path("datasets/", apis.DatasetList.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", apis.DatasetDetail.as_view(), name="api-dataset"),
    path("mappings/", apis.MappingList.as_view(), name="api-mappings"),
    path("mappings/<int:pk>/", apis.MappingDetail.as_view(), name="api-mapping"),
    path("mappings/<int:pk>/state/", apis.MappingState.as_view(), name="api-mapping-state"),
    path("mappings/<int:pk>/actions/<str:name>/", apis.MappingAction.as_view(), name="api-mapping-action"),
    path("action-runs/<int:pk>/", apis.ActionRunDetail.as_view(), name="api-action-run"),
    path("uploads/", apis.UploadList.as_view(), name="api-uploads"),
    path("uploads/<int:pk>/", apis.UploadDetail.as_view(), name="api-upload"),
    path("uploads/tus/", include("portal.uploads.urls")),
    path("uploads/chunked/", apis.ChunkedStart.as_view(), name="api-chunked"),
    path("uploads/chunked/<uuid:pk>/", apis.ChunkedDetail.as_view(), name="api-chunked-detail"),
    path("uploads/chunked/<uuid:pk>/complete/", apis.ChunkedComplete.as_view(), name="api-chunked-complete"),
    path("releases/", apis.ReleaseList.as_view(), name="api-releases"),
    path("releases/<int:pk>/", apis.ReleaseDetail.as_view(), name="api-release"),
    path("releases/<int:pk>/ledger/", ledger_apis.ReleaseLedger.as_view(), name="api-release-ledger"),
    path("releases/export/<str:fmt>/", ledger_apis.ReleaseExport.as_view(), name="api-release-export"),
    path("releases/<int:pk>/cancel/", apis.ReleaseCancel.as_view(), name="api-release-cancel"),
    path("releases/<int:pk>/retry/", apis.ReleaseRetry.as_view(), name="api-release-retry"),
    path("releases/<int:pk>/resolve/", attention_views.ReleaseStepResolve.as_view(), name="api-release-resolve"),
    path("release-sets/", apis.ReleaseSetList.as_view(), name="api-release-sets"),
    path("release-sets/<int:pk>/", apis.ReleaseSetDetail.as_view(), name="api-release-set"),
    path("release-sets/<int:pk>/cancel/", apis.ReleaseSetCancel.as_view(), name="api-release-set-cancel"),
    path("release-sets/<int:pk>/retry/", apis.ReleaseSetRetry.as_view(), name="api-release-set-retry"),
]
