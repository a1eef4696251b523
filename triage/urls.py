"""URLs of the triage app."""

from django.urls import path

from triage.views import worklist

app_name = "triage"

urlpatterns = [
    path("", worklist.worklist, name="worklist"),
]
