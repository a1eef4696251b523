"""URL configuration."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from triage.views import system

urlpatterns = [
    path("healthz", system.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("triage.api_urls")),
    path("revision/", include("triage.audit_urls")),
    path("", include("triage.urls")),
]

handler500 = "triage.views.system.server_error"
