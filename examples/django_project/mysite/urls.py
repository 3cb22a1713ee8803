"""URL routes of the example project."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("async/", views.async_view),
    path("stream/", views.stream),
]
