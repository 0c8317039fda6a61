"""The work-row mixin: every unit of background work is a row of a model built on ``DurableWork``.

See ``durable/__init__.py`` for the rules. The mixin is abstract: each app keeps its work in its
own table (with its own foreign keys), and the helpers of ``durable.work`` operate on any of them.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class WorkState(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "In progress"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


# Rows a worker may still have to do (a running row whose lease ended is due again).
ACTIVE_STATES = (WorkState.PENDING, WorkState.RUNNING)


def due_index(name: str) -> models.Index:
    """The index the claims and the reconciler read: unfinished rows by when they are due. Its
    name is the model's own (``%(app_label)s_%(class)s_due`` unless that is over 30 characters)."""
    return models.Index(
        fields=["next_attempt_at"], name=name, condition=Q(state__in=["pending", "running"])
    )


class DurableWork(models.Model):
    """State, attempts, when to try next and the last failure in words, for one unit of work.

    ``next_attempt_at`` is the single "when": for a pending row, the next try; for a running
    row, the end of the claim's lease (a worker that died leaves the row due again then).
    """

    state = models.CharField(max_length=10, choices=WorkState.choices, default=WorkState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    # The claim that holds a running row (one value per claim, shared by its batch).
    claim = models.CharField(max_length=32, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
        indexes = [due_index("%(app_label)s_%(class)s_due")]
