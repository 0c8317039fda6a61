from django.urls import path

from telemetry import views

app_name = "telemetry"
urlpatterns = [
    path("map/", views.fleet_map, name="fleet_map"),
    path("map/data.json", views.fleet_map_data, name="fleet_map_data"),
    path("places/", views.places, name="places"),
    path("distance/", views.fleet_distance, name="distance"),
    path("fleet-columns/", views.fleet_columns_save, name="fleet_columns"),
    path("places/<uuid:public_id>/delete/", views.place_delete, name="place_delete"),
    path("vehicles/<uuid:public_id>/", views.panel, name="panel"),
    path("vehicles/<uuid:public_id>/refresh/", views.refresh, name="refresh"),
]
