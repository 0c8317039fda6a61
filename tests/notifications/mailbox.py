"""The test worker's sent emails, read back from its file backend (tests/conftest.py)."""

from __future__ import annotations

import email
import shutil
from email.message import Message

from tests.support.worker import worker_mail_folder

SEPARATOR = "-" * 79


def empty() -> None:
    folder = worker_mail_folder()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def messages() -> list[Message]:
    """The messages written so far. The backend appends each message, then a separator line; a
    message the worker is still writing (no separator yet) is not one yet."""
    found = []
    for path in sorted(worker_mail_folder().glob("*.log")):
        *written, _being_written = path.read_text(errors="replace").split(SEPARATOR)
        for chunk in written:
            if chunk.strip():
                found.append(email.message_from_string(chunk.strip() + "\n"))
    return found


def parts(message: Message) -> dict[str, str]:
    """{content type: decoded text} of a multipart message."""
    return {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
