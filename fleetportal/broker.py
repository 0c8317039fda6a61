"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu writes a message by creating the file and then filling it, while a consumer may move and
read the file in between; it then reads an empty file, fails to decode it and the task is lost
(celery/kombu#1551). Here a message is written under a name no consumer picks up and renamed
into place once complete; a rename within one folder is atomic on POSIX.
"""

import contextlib
import os
import uuid
from time import monotonic

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
