"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu writes a message by creating the file and then filling it, while a consumer may move and
read the file in between; it then reads an empty file, fails to decode it and the task is lost
(celery/kombu#1551). Here a message is written under a name no consumer picks up and renamed
into place once complete; a rename within one folder is atomic on POSIX.

The transport has no way to wait for a message: it polls the folder, and a worker busy with its
one prefetched task polls too, until the task is done. One fixed interval is either slow (a task
that wakes its continuation waits up to the interval for it: at 0.1 s a chain of import batches
runs at a few per second) or costly when idle. So the worker polls every
``busy_polling_interval`` while work flows (a message came in the last ``busy_seconds``) and
every ``polling_interval`` once idle.
"""

import contextlib
import os
import uuid
from queue import Empty
from time import monotonic, sleep
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# A consumer only takes files named "<stamp>.<queue>.msg"; this suffix keeps a message being
# written out of its sight.
PARTIAL_SUFFIX = ".partial"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):  # type: ignore[override]  # kombu calls it so
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final_path = os.path.join(self.data_folder_out, name)
        partial_path = final_path + PARTIAL_SUFFIX
        try:
            with open(partial_path, "wb") as partial:
                partial.write(str_to_bytes(dumps(payload)))
            os.replace(partial_path, final_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial_path)
            raise ChannelError(
                f"Cannot add a message to the broker folder {self.data_folder_out!r}"
            ) from exc


class Transport(filesystem.Transport):
    Channel = Channel
    busy_polling_interval = 0.005
    busy_seconds = 2.0

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        options = client.transport_options
        self.busy_polling_interval = options.get(
            "busy_polling_interval", self.busy_polling_interval
        )
        self.busy_seconds = options.get("busy_seconds", self.busy_seconds)
        self._last_message = 0.0

    # kombu's two base classes declare this differently; the virtual transport's is the one.
    def drain_events(  # type: ignore[override]
        self, connection: Any, timeout: float | None = None
    ) -> None:
        """kombu's loop (one message per call), with the polling interval of the moment."""
        cycle = self.cycle
        assert cycle is not None, "the transport has a cycle once a channel is open"
        started = monotonic()
        while True:
            try:
                cycle.get(self._deliver, timeout=timeout)
            except Empty:
                now = monotonic()
                if timeout is not None and now - started >= timeout:
                    raise TimeoutError() from None
                busy = now - self._last_message < self.busy_seconds
                interval = float(
                    self.busy_polling_interval if busy else (self.polling_interval or 0.0)
                )
                if timeout:
                    interval = min(interval, timeout)
                sleep(interval)
            else:
                self._last_message = monotonic()
                return
