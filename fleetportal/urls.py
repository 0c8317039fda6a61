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
    path("admin/", admin.site.urls),
]

if settings.SIMULATOR_ENABLED:
    urlpatterns.append(path("simulator/", include("simulator.urls")))
