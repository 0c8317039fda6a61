"""Pages of the notifications app: the notification centre and bell, alert rules, personal
settings, webhook endpoints, and the unsubscribe link of emails."""
