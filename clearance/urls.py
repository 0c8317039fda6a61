from django.urls import path

from clearance import views, webhooks

app_name = "clearance"
# HM webhooks (signed; the only view exempt from login and CSRF). Also served without the page
# middleware (fleetportal/urls_lean.py).
webhook_patterns = [
    path(
        "webhooks/high-mobility/<uuid:public_id>/",
        webhooks.high_mobility,
        name="webhook_high_mobility",
    ),
]
urlpatterns = [
    *webhook_patterns,
    # Credentials (owner only).
    path("credentials/", views.credential_list, name="credentials"),
    path("credentials/add/", views.credential_add, name="credential_add"),
    path("credentials/<uuid:public_id>/", views.credential_detail, name="credential_detail"),
    path("credentials/<uuid:public_id>/test/", views.credential_test, name="credential_test"),
    path("credentials/<uuid:public_id>/delete/", views.credential_delete, name="credential_delete"),
    path(
        "credentials/<uuid:public_id>/test/status/",
        views.credential_test_status,
        name="credential_test_status",
    ),
]
