from django.urls import path

from imports import views

app_name = "imports"
urlpatterns = [
    path("", views.upload, name="upload"),
    path("export/", views.export, name="export"),
    path("<uuid:public_id>/", views.job, name="job"),
    path("<uuid:public_id>/status/", views.job_status, name="job_status"),
    path("<uuid:public_id>/confirm/", views.confirm, name="confirm"),
    path("<uuid:public_id>/recheck/", views.recheck, name="recheck"),
    path("<uuid:public_id>/cancel/", views.cancel, name="cancel"),
    path("<uuid:public_id>/errors.csv", views.error_report, name="error_report"),
]
