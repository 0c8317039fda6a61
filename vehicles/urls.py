from django.urls import path

from vehicles import views

app_name = "vehicles"
urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("counters/", views.fleet_counters, name="counters"),
    path("bulk/", views.fleet_bulk, name="bulk"),
    path("add/", views.vehicle_add, name="add"),
    path("add/check-vin/", views.vehicle_check_vin, name="check-vin"),
    path("<uuid:public_id>/", views.vehicle_detail, name="detail"),
    path("<uuid:public_id>/edit/", views.vehicle_edit, name="edit"),
    path("<uuid:public_id>/row/", views.vehicle_row, name="row"),
    path("<uuid:public_id>/status/", views.vehicle_status, name="status"),
    path("<uuid:public_id>/defleet/", views.vehicle_defleet, name="defleet"),
    path("<uuid:public_id>/reonboard/", views.vehicle_reonboard, name="reonboard"),
]
