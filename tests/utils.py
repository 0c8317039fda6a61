"""Test helpers shared by every area."""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally when a needed part is missing; under CI=true that is a failure instead."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"Required part missing under CI=true: {reason}")
    pytest.skip(reason)
