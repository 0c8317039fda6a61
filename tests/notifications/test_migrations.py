"""Deliveries stored before they were durable work keep their meaning after the migration (and
after migrating back)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from notifications.models import OutgoingEmail
from tests.factories import MembershipFactory

BEFORE = [("notifications", "0001_initial")]
AFTER = [("notifications", "0003_delivered_and_canceled_become_done")]


def migrate(targets=None):
    """Migrate to ``targets`` (None: every app's latest); the models as they were there."""
    executor = MigrationExecutor(connection)
    targets = targets or executor.loader.graph.leaf_nodes()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_delivered_and_canceled_rows_keep_their_meaning_as_durable_work():
    membership = MembershipFactory()
    old = migrate(BEFORE)
    email = old.get_model("notifications", "OutgoingEmail")
    now = timezone.now()
    for state, delivered_at in [
        ("pending", None),
        ("delivered", now),
        ("delivered", None),  # never written so, but must not read as canceled
        ("canceled", None),
        ("failed", None),
    ]:
        email.objects.create(
            organization_id=membership.organization_id,
            user_id=membership.user_id,
            kind="alerts",
            state=state,
            attempts=2,
            next_attempt_at=now,
            last_attempt_at=now,
            last_error=f"why {state}",
            created_at=now,
            delivered_at=delivered_at,
        )
    try:
        migrate(AFTER)
        rows = OutgoingEmail.objects.order_by("pk")
        assert [(r.state, r.status, r.attempts) for r in rows] == [
            ("pending", "pending", 2),
            ("done", "delivered", 2),
            ("done", "delivered", 2),
            ("done", "canceled", 2),
            ("failed", "failed", 2),
        ]
        assert [r.last_error for r in rows][3:] == ["why canceled", "why failed"]
        migrate(BEFORE)
        states = email.objects.order_by("pk").values_list("state", flat=True)
        assert list(states) == ["pending", "delivered", "delivered", "canceled", "failed"]
    finally:
        migrate()
