"""The uploaded file, kept in the database in 1 MB ``ImportChunk`` rows so a worker on another
machine can read it, and deleted ``IMPORT_FILE_RETENTION_DAYS`` after its import ended."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, BinaryIO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from imports.models import ImportChunk, ImportJob

CHUNK_BYTES = 1024 * 1024


def prune_old_files() -> int:
    """Delete stored files of imports that ended more than IMPORT_FILE_RETENTION_DAYS ago."""
    cutoff = timezone.now() - timedelta(days=settings.IMPORT_FILE_RETENTION_DAYS)
    deleted, _ = ImportChunk.objects.filter(
        job__finished_at__lt=cutoff,
        job__status__in=[ImportJob.Status.DONE, ImportJob.Status.FAILED, ImportJob.Status.CANCELED],
    ).delete()
    return deleted


def job_file_kept(job: ImportJob) -> bool:
    return job.chunks.exists()


def _chunks(upload: UploadedFile) -> Iterator[bytes]:
    buffer = b""
    for piece in upload.chunks(CHUNK_BYTES):
        buffer += piece
        while len(buffer) >= CHUNK_BYTES:
            yield buffer[:CHUNK_BYTES]
            buffer = buffer[CHUNK_BYTES:]
    if buffer:
        yield buffer


class JobFile(io.RawIOBase):
    """The job's file read back chunk by chunk (one query per MB), never whole."""

    def __init__(self, job: ImportJob) -> None:
        self._job_id = job.pk
        self._index = 0
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._buffer:
            row = ImportChunk.objects.filter(job_id=self._job_id, index=self._index).values_list(
                "data", flat=True
            )
            data = next(iter(row), None)
            if data is None:
                return 0
            self._index += 1
            self._buffer = memoryview(bytes(data))
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def open_job_file(job: ImportJob) -> BinaryIO:
    return io.BufferedReader(JobFile(job), buffer_size=256 * 1024)
