from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from fleetportal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path("", include("organizations.urls")),
    path("fleet/", include("vehicles.urls")),
    path("imports/", include("vehicles.imports.urls")),
    path("telemetry/", include("vehicles.telemetry.urls")),
    path("", include("clearance.urls")),
    path("notifications/", include("notifications.urls")),
    path("admin/", admin.site.urls),
]

# 404 and 500 are Django's views with our templates/404.html and 500.html; 403 adds the reason.
handler403 = "fleetportal.errors.permission_denied"

if settings.SIMULATOR_ENABLED:
    urlpatterns.append(path("simulator/", include("simulator.urls")))
