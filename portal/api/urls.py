from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from portal.api.connections import ConnectionBrowse, ConnectionDetail, ConnectionList, ConnectionState, ConnectionTest
from portal.api.datasets import DatasetDetail, DatasetList
from portal.api.ledger import ReleaseExport, ReleaseLedger
from portal.api.mappings import ActionRunDetail, MappingAction, MappingDetail, MappingList, MappingState
from portal.api.release_sets import ReleaseSetCancel, ReleaseSetDetail, ReleaseSetList, ReleaseSetRetry
from portal.api.releases import ReleaseCancel, ReleaseDetail, ReleaseList, ReleaseRetry
from portal.api.uploads import ChunkedComplete, ChunkedDetail, ChunkedStart, UploadDetail, UploadList
from portal.views.attention import ReleaseStepResolve

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's settings as a script of its own (no inline script: CSP).
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("connections/", ConnectionList.as_view(), name="api-connections"),
    path("connections/<int:pk>/", ConnectionDetail.as_view(), name="api-connection"),
    path("connections/<int:pk>/test/", ConnectionTest.as_view(), name="api-connection-test"),
    path("connections/<int:pk>/state/", ConnectionState.as_view(), name="api-connection-state"),
    path("connections/<int:pk>/browse/<str:field>/", ConnectionBrowse.as_view(), name="api-connection-browse"),
    path("datasets/", DatasetList.as_view(), name="api-datasets"),
    path("datasets/<int:pk>/", DatasetDetail.as_view(), name="api-dataset"),
    path("mappings/", MappingList.as_view(), name="api-mappings"),
    path("mappings/<int:pk>/", MappingDetail.as_view(), name="api-mapping"),
    path("mappings/<int:pk>/state/", MappingState.as_view(), name="api-mapping-state"),
    path("mappings/<int:pk>/actions/<str:name>/", MappingAction.as_view(), name="api-mapping-action"),
    path("action-runs/<int:pk>/", ActionRunDetail.as_view(), name="api-action-run"),
    path("uploads/", UploadList.as_view(), name="api-uploads"),
    path("uploads/<int:pk>/", UploadDetail.as_view(), name="api-upload"),
    path("uploads/tus/", include("portal.uploads.urls")),
    path("uploads/chunked/", ChunkedStart.as_view(), name="api-chunked"),
    path("uploads/chunked/<uuid:pk>/", ChunkedDetail.as_view(), name="api-chunked-detail"),
    path("uploads/chunked/<uuid:pk>/complete/", ChunkedComplete.as_view(), name="api-chunked-complete"),
    path("releases/", ReleaseList.as_view(), name="api-releases"),
    path("releases/<int:pk>/", ReleaseDetail.as_view(), name="api-release"),
    path("releases/<int:pk>/ledger/", ReleaseLedger.as_view(), name="api-release-ledger"),
    path("releases/export/<str:fmt>/", ReleaseExport.as_view(), name="api-release-export"),
    path("releases/<int:pk>/cancel/", ReleaseCancel.as_view(), name="api-release-cancel"),
    path("releases/<int:pk>/retry/", ReleaseRetry.as_view(), name="api-release-retry"),
    path("releases/<int:pk>/resolve/", ReleaseStepResolve.as_view(), name="api-release-resolve"),
    path("release-sets/", ReleaseSetList.as_view(), name="api-release-sets"),
    path("release-sets/<int:pk>/", ReleaseSetDetail.as_view(), name="api-release-set"),
    path("release-sets/<int:pk>/cancel/", ReleaseSetCancel.as_view(), name="api-release-set-cancel"),
    path("release-sets/<int:pk>/retry/", ReleaseSetRetry.as_view(), name="api-release-set-retry"),
]
