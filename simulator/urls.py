"""The simulated HM API, mounted at /simulator/ when SIMULATOR_ENABLED (same paths as HM)."""

from django.urls import path

from . import views

app_name = "simulator"
urlpatterns = [
    path("", views.index, name="index"),
    path("v1/access_tokens", views.access_tokens, name="access-tokens"),
    path("v1/auth_tokens", views.auth_tokens, name="auth-tokens"),
    path("v1/auth_tokens/<str:auth_token>", views.auth_token_detail, name="auth-token-detail"),
    path("v1/fleets/vehicles", views.fleet_vehicles, name="fleet-vehicles"),
    path("v1/fleets/vehicles/<str:vin>", views.fleet_vehicle, name="fleet-vehicle"),
    path("v1/fleets/access_tokens", views.fleet_access_tokens, name="fleet-access-tokens"),
    path(
        "v1/fleets/<str:vin>/cancel_activation", views.cancel_activation, name="cancel-activation"
    ),
    path("v1/eligibility", views.eligibility, name="eligibility"),
    path("v1/vehicle-data/autoapi-13/<str:vin>", views.vehicle_data, name="vehicle-data"),
]
