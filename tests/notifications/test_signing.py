"""The signature of outgoing webhooks, checked with the receivers' snippet from the docs."""

import json
import re
import time
from pathlib import Path

import pytest

from notifications import signing

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
SECRET = "whsec_test-secret"
BODY = json.dumps({"id": "6c1d", "type": "clearance.changed", "version": 1}).encode()


def docs_snippet() -> dict:
    """The Python verification snippet of docs/notifications.md, run as a receiver would."""
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    snippet = next(block for block in blocks if "def verify_fleetportal_signature" in block)
    namespace: dict = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)
    return namespace


def test_the_header_has_the_documented_shape():
    header = signing.header_value(SECRET, BODY, timestamp=1_764_590_400)
    assert re.fullmatch(r"t=1764590400,v1=[0-9a-f]{64}", header)


def test_our_signature_verifies_with_the_docs_snippet():
    verify = docs_snippet()["verify_fleetportal_signature"]
    header = signing.header_value(SECRET, BODY)
    assert verify(BODY, header, SECRET) is True
    assert signing.verify(SECRET, BODY, header)


@pytest.mark.parametrize(
    "change",
    ["altered body", "wrong secret", "replayed later", "timestamp changed", "no signature"],
)
def test_an_altered_or_replayed_webhook_fails_the_docs_snippet(change):
    verify = docs_snippet()["verify_fleetportal_signature"]
    sent_at = int(time.time())
    header = signing.header_value(SECRET, BODY, timestamp=sent_at)
    body, secret = BODY, SECRET
    if change == "altered body":
        body = BODY.replace(b"clearance.changed", b"vehicle.defleeted")
    elif change == "wrong secret":
        secret = "whsec_someone-else"
    elif change == "replayed later":
        # The very same request, captured and sent again ten minutes later.
        header = signing.header_value(SECRET, BODY, timestamp=sent_at - 600)
    elif change == "timestamp changed":
        # A replay with a fresh timestamp: the HMAC no longer matches.
        header = header.replace(f"t={sent_at}", f"t={sent_at + 1}")
    else:
        header = f"t={sent_at}"
    assert verify(body, header, secret) is False
    assert not signing.verify(secret, body, header)


def test_a_new_secret_each_time():
    assert signing.new_secret() != signing.new_secret()
    assert signing.new_secret().startswith("whsec_")
