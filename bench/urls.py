"""The benchmark's URLconf: the project's URLs plus the baselines the figures compare with."""

from django.urls import include, path

from bench import views
from config import urls as project_urls

urlpatterns = [
    path("bench/hello/", views.hello, name="bench_hello"),
    path("bench/worklist-queries/", views.worklist_queries, name="bench_worklist_queries"),
    path("bench/triage-plain/<int:pk>/", views.triage_plain, name="bench_triage_plain"),
    path("", include("config.urls")),
]

handler500 = project_urls.handler500
