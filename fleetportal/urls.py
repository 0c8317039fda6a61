from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from api.urls import v1_urls
from fleetportal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),
    path("", include("organizations.urls")),
    path("fleet/", include("vehicles.urls")),
    path("imports/", include("imports.urls")),
    path("telemetry/", include("telemetry.urls")),
    path("", include("clearance.urls")),
    path("notifications/", include("notifications.urls")),
    v1_urls,
    path("", include("api.urls")),
    path("", include("audit.urls")),
    # Import jobs and telemetry snapshots were administered under the vehicles app once;
    # bookmarks of those admin pages still lead there.
    re_path(
        r"^admin/vehicles/importjob/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/imports/importjob/%(rest)s", query_string=True),
    ),
    re_path(
        r"^admin/vehicles/telemetrysnapshot/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/telemetry/telemetrysnapshot/%(rest)s", query_string=True),
    ),
    path("admin/", admin.site.urls),
]

# 404 and 500 are Django's views with our templates/404.html and 500.html; 403 adds the reason.
handler403 = "fleetportal.errors.permission_denied"

if settings.SIMULATOR_ENABLED:
    urlpatterns.append(path("simulator/", include("simulator.urls")))
