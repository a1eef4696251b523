"""URLs of the API for referral systems (token-authenticated, see triage.views.api)."""

from django.urls import path

from triage.views import api

app_name = "api"

urlpatterns = [
    path("fhir/ServiceRequest", api.fhir_service_request, name="fhir-servicerequest"),
    path("fhir/Task", api.fhir_task_search, name="fhir-task"),
    path("hl7", api.hl7_message, name="hl7"),
]
