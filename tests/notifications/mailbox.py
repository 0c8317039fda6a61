"""The test worker's sent emails, read back from its file backend (tests/conftest.py)."""

from __future__ import annotations

import email
import shutil
import time
from email.message import Message

from tests.support.worker import worker_mail_folder

SEPARATOR = "-" * 79


def empty() -> None:
    folder = worker_mail_folder()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def messages() -> list[Message]:
    found = []
    for path in sorted(worker_mail_folder().glob("*.log")):
        for chunk in path.read_text(errors="replace").split(SEPARATOR):
            if chunk.strip():
                found.append(email.message_from_string(chunk.strip() + "\n"))
    return found


def wait_for(predicate, timeout: float = 30.0) -> list[Message]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent = messages()
        if predicate(sent):
            return sent
        time.sleep(0.2)
    raise AssertionError(f"the worker sent {len(messages())} emails, not what was expected")


def parts(message: Message) -> dict[str, str]:
    """{content type: decoded text} of a multipart message."""
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
