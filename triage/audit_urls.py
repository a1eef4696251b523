"""URLs of the auditor's workspace (read-only; Swedish paths like the rest of the app)."""

from django.urls import path

from triage.views import audit

app_name = "audit"

urlpatterns = [
    path("", audit.timeline, name="timeline"),
    path("tidslinje.csv", audit.timeline_csv, name="timeline_csv"),
    path("remiss/<int:pk>/", audit.referral_record, name="referral"),
    path("atkomstlogg/", audit.access_log, name="access_log"),
    path("loggutdrag/", audit.patient_extract_view, name="patient_extract"),
]
