"""The three writes of an alert storm, as single SQL statements (PostgreSQL and SQLite alike).

A sync that finds 10,000 rejections fires 10,000 alerts inside its own transaction: building
that many model instances, and a notification for each member, would take seconds of Python.
Here the alerts go in with ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (Django's
``bulk_create(ignore_conflicts=True)`` cannot say which rows went in), and notifications and
email links are ``INSERT ... SELECT`` from rows already in the database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Field

from notifications.models import Alert, Notification, OutgoingEmail
from organizations.models import Membership

CHUNK = 2000  # rows per statement: 18,000 parameters (SQLite allows 32,766, PostgreSQL 65,535)
ALERT_COLUMNS = (
    "public_id",
    "organization",
    "rule",
    "vehicle",
    "kind",
    "rule_name",
    "title",
    "detail",
    "fired_at",
)


def _chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _table(model) -> str:
    return _q(model._meta.db_table)


def _field(model, name: str) -> Field:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), name  # a concrete column, not a reverse relation
    return field


def _column(model, name: str) -> str:
    return _q(str(_field(model, name).column))


def insert_open_alerts(alerts: list[Alert]) -> list[Alert]:
    """INSERT the alerts; those whose rule and vehicle already have an open alert are skipped
    (the partial unique index decides). Returns the inserted ones, with their ids."""
    fields = [_field(Alert, name) for name in ALERT_COLUMNS]
    columns = ", ".join(_q(str(f.column)) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    opened: list[Alert] = []
    for chunk in _chunks(alerts):
        params = [
            f.get_db_prep_save(getattr(alert, f.attname), connection)
            for alert in chunk
            for f in fields
        ]
        sql = (
            f"INSERT INTO {_table(Alert)} ({columns}) VALUES {', '.join([row] * len(chunk))} "  # noqa: S608
            f"ON CONFLICT ({_column(Alert, 'rule')}, {_column(Alert, 'vehicle')}) "
            f"WHERE {_column(Alert, 'cleared_at')} IS NULL DO NOTHING "
            f"RETURNING {_column(Alert, 'id')}, {_column(Alert, 'public_id')}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted = {uuid.UUID(str(public_id)): pk for pk, public_id in cursor.fetchall()}
        for alert in chunk:
            pk = inserted.get(alert.public_id)
            if pk is not None:
                alert.pk = pk
                alert._state.adding = False
                opened.append(alert)
    return opened


def notify_members(alert_ids: list[int]) -> None:
    """A notification for every active member of each alert's organization."""
    user = get_user_model()
    for chunk in _chunks(alert_ids):
        sql = (
            f"INSERT INTO {_table(Notification)} ({_column(Notification, 'user')}, "  # noqa: S608
            f"{_column(Notification, 'organization')}, {_column(Notification, 'alert')}, "
            f"{_column(Notification, 'created_at')}) "
            f"SELECT m.{_column(Membership, 'user')}, a.{_column(Alert, 'organization')}, "
            f"a.{_column(Alert, 'id')}, a.{_column(Alert, 'fired_at')} "
            f"FROM {_table(Alert)} a "
            f"JOIN {_table(Membership)} m "
            f"ON m.{_column(Membership, 'organization')} = a.{_column(Alert, 'organization')} "
            f"JOIN {_table(user)} u ON u.{_column(user, 'id')} = m.{_column(Membership, 'user')} "
            f"WHERE u.{_column(user, 'is_active')} = %s "
            f"AND a.{_column(Alert, 'id')} IN ({', '.join(['%s'] * len(chunk))})"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [True, *chunk])


def link_email_alerts(email_ids: list[int], alert_ids: list[int]) -> None:
    """Each email lists the alerts (of these) of its own rule and organization."""
    through = OutgoingEmail.alerts.through
    for emails in _chunks(email_ids, 200):
        for chunk in _chunks(alert_ids):
            sql = (
                f"INSERT INTO {_table(through)} ({_column(through, 'outgoingemail')}, "  # noqa: S608
                f"{_column(through, 'alert')}) "
                f"SELECT e.{_column(OutgoingEmail, 'id')}, a.{_column(Alert, 'id')} "
                f"FROM {_table(OutgoingEmail)} e JOIN {_table(Alert)} a "
                f"ON a.{_column(Alert, 'rule')} = e.{_column(OutgoingEmail, 'rule')} "
                f"AND a.{_column(Alert, 'organization')} = "
                f"e.{_column(OutgoingEmail, 'organization')} "
                f"WHERE e.{_column(OutgoingEmail, 'id')} IN ({', '.join(['%s'] * len(emails))}) "
                f"AND a.{_column(Alert, 'id')} IN ({', '.join(['%s'] * len(chunk))})"
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [*emails, *chunk])
