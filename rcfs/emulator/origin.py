"""An external media origin: content URIs on another server (the benchmarks' nginx).

With ``media_origin`` set (``--media-origin URL --media-dir DIR``), the content URIs of
recordings, message attachments and greetings point at ``URL`` instead of the emulator's
own media port, and the emulator writes each object's bytes to ``DIR`` + the URI's path the
first time it hands the URI out (atomically: a server reading ``DIR`` never sees half a
file). A static server on ``DIR`` then serves the very bytes the emulator would, so rcfs,
rclone and curl can be timed against one server (issue 15). Requests to that server are
not in the emulator's request log and spend no rate budget: count them in its access log.
RingCentral itself serves content from a host of its own (docs/ringcentral.md §1.1).
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rcfs.emulator.core import Emulator
    from rcfs.emulator.store import Blob


def content_uri(emu: Emulator, base: str, path: str, blob: Blob) -> str:
    """``base + path``, or the external origin's URI of ``path`` with the file written."""
    origin = emu.config.media_origin
    if not origin:
        return base + path
    if path not in emu.published:
        _publish(emu.config.media_dir, path, blob.bytes())
        emu.published.add(path)
    return origin.rstrip("/") + path


def _publish(directory: str, path: str, data: bytes) -> None:
    target = os.path.join(directory, path.lstrip("/"))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # the static server may run as another user
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
