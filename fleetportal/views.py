from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fleetportal import health


@login_not_required
@require_GET
@never_cache
def healthz(request):
    db_ok, db_detail = health.check_database()
    broker_ok, broker_detail = health.check_broker()
    cache_ok, cache_detail = health.check_cache()
    ok = db_ok and broker_ok
    body = {
        "status": ("ok" if cache_ok else "degraded") if ok else "unavailable",
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
        "cache": {"ok": cache_ok, "detail": cache_detail},
    }
    return JsonResponse(body, status=200 if ok else 503)


def home(request):
    return redirect("vehicles:fleet")


@login_not_required
@require_GET
def favicon(request):
    # Browsers ask for /favicon.ico on pages (admin) that do not link our icon.
    return redirect(static("img/favicon.svg"), permanent=True)
