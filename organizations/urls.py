from django.contrib.auth import views as auth_views
from django.urls import path

from organizations import invitation_views, views

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("organization/switch/", views.switch_organization, name="switch_organization"),
    path("members/", views.members, name="members"),
    path("members/<int:pk>/", views.member_update, name="member_update"),
    path(
        "members/invitations/<int:pk>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path(
        "members/invitations/<int:pk>/send-again/",
        views.invitation_send_again,
        name="invitation_send_again",
    ),
    path("invitations/<str:token>/", invitation_views.invitation, name="invitation"),
]
