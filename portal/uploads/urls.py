from django.urls import path

from portal.uploads import views

urlpatterns = [
    path("", views.tus_collection, name="api-tus"),
    path("<uuid:pk>/", views.tus_resource, name="api-tus-upload"),
    # Without the slash too: `curl -T file URL/` would append the file's name to the URL.
    path("<uuid:pk>", views.tus_resource, name="api-tus-upload-noslash"),
]
