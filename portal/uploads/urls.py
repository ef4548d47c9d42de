from django.urls import path

from . import views

urlpatterns = [
    path("", views.tus_collection, name="api-tus"),
    path("<uuid:pk>/", views.tus_resource, name="api-tus-upload"),
]
