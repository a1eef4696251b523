"""URLs of the triage app."""

from django.urls import path

from triage import views

app_name = "triage"

urlpatterns = [
    path("", views.worklist, name="worklist"),
]
