from django.urls import path

from telemetry import views

app_name = "telemetry"
urlpatterns = [
    path("map/", views.fleet_map, name="fleet_map"),
    path("vehicles/<uuid:public_id>/", views.panel, name="panel"),
    path("vehicles/<uuid:public_id>/refresh/", views.refresh, name="refresh"),
]
