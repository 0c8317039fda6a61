from django.urls import path

from vehicles.views import fleet, vehicle

app_name = "vehicles"
urlpatterns = [
    path("", fleet.fleet, name="fleet"),
    path("counters/", fleet.fleet_counters, name="counters"),
    path("live/", fleet.fleet_live, name="live"),
    path("bulk/", fleet.fleet_bulk, name="bulk"),
    path("add/", vehicle.vehicle_add, name="add"),
    path("add/check-vin/", vehicle.vehicle_check_vin, name="check-vin"),
    path("<uuid:public_id>/", vehicle.vehicle_detail, name="detail"),
    path("<uuid:public_id>/edit/", vehicle.vehicle_edit, name="edit"),
    path("<uuid:public_id>/row/", fleet.vehicle_row, name="row"),
    path("<uuid:public_id>/status/", vehicle.vehicle_status, name="status"),
    path("<uuid:public_id>/defleet/", vehicle.vehicle_defleet, name="defleet"),
    path("<uuid:public_id>/reonboard/", vehicle.vehicle_reonboard, name="reonboard"),
]
