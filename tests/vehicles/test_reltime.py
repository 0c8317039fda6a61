"""The relative-time filter used by every page ("Status since", history, imports)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from organizations.templatetags.fleet import reltime


@pytest.mark.parametrize("seconds", [0, 30, 45, 59, -59])
def test_under_a_minute_is_just_now(seconds):
    text = reltime(timezone.now() - timedelta(seconds=seconds))
    assert ">just now</time>" in text
    assert "0\xa0minutes" not in text and "0 minutes" not in text


def test_a_minute_or_more_is_counted():
    assert "1\xa0minute ago</time>" in reltime(timezone.now() - timedelta(seconds=61))
    assert "in 5\xa0minutes</time>" in reltime(timezone.now() + timedelta(minutes=5, seconds=5))


def test_no_time_says_the_given_word():
    assert reltime(None) == "never"
    assert reltime(None, "not yet") == "not yet"
