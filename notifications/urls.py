from django.urls import path

from notifications.views import centre, personal, rules, webhooks

app_name = "notifications"
urlpatterns = [
    path("", centre.notification_list, name="list"),
    path("bell/", centre.bell, name="bell"),
    path("read-all/", centre.mark_all_read, name="mark_all_read"),
    path("<int:pk>/read/", centre.mark_read, name="mark_read"),
    path("<int:pk>/open/", centre.open_notification, name="open"),
    path("settings/", personal.my_settings, name="settings"),
    path("unsubscribe/<str:token>/", personal.unsubscribe, name="unsubscribe"),
    path("rules/", rules.rule_list, name="rules"),
    path("rules/add/", rules.rule_add, name="rule_add"),
    path("rules/<uuid:public_id>/", rules.rule_edit, name="rule_edit"),
    path("rules/<uuid:public_id>/toggle/", rules.rule_toggle, name="rule_toggle"),
    path("rules/<uuid:public_id>/delete/", rules.rule_delete, name="rule_delete"),
    path("webhooks/", webhooks.webhook_list, name="webhooks"),
    path("webhooks/add/", webhooks.webhook_add, name="webhook_add"),
    path("webhooks/<uuid:public_id>/", webhooks.webhook_detail, name="webhook_detail"),
    path("webhooks/<uuid:public_id>/test/", webhooks.webhook_test, name="webhook_test"),
    path("webhooks/<uuid:public_id>/rotate/", webhooks.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<uuid:public_id>/enable/", webhooks.webhook_enable, name="webhook_enable"),
    path("webhooks/<uuid:public_id>/delete/", webhooks.webhook_delete, name="webhook_delete"),
    path(
        "webhooks/<uuid:public_id>/deliveries/<uuid:delivery_id>/redeliver/",
        webhooks.webhook_redeliver,
        name="webhook_redeliver",
    ),
]
