"""GNOME's thumbnail factory, driven the way Nautilus drives it (run with the system python3).

For each path: look up an existing thumbnail, then a failure record, then ask
``can_thumbnail``; otherwise ``generate_thumbnail`` (the factory picks the thumbnailer from
/usr/share/thumbnailers and runs it in its bwrap + seccomp sandbox) and then
``save_thumbnail`` on success or ``create_failed_thumbnail`` on any error, exactly as
nautilus-thumbnails.c ``thumbnail_thread_func`` does (gnome-desktop and nautilus 43).
Prints one JSON list; ``$XDG_CACHE_HOME`` decides where thumbnails and failures go.
Not imported by the tests: the venv has no PyGObject, the system python3 has.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import gi  # type: ignore[import-not-found, unused-ignore]

gi.require_version("GnomeDesktop", "3.0")
from gi.repository import Gio, GLib, GnomeDesktop  # type: ignore[import-not-found, unused-ignore]  # noqa: E402


def thumbnail(factory: Any, path: str) -> dict[str, Any]:
    gfile = Gio.File.new_for_path(path)
    info = gfile.query_info("standard::content-type,standard::size,time::modified", 0, None)
    uri, mime = gfile.get_uri(), info.get_content_type()
    mtime = info.get_attribute_uint64("time::modified")
    rec: dict[str, Any] = {"path": path, "uri": uri, "mime": mime, "size": info.get_size(),
                           "mtime": mtime}
    if factory.lookup(uri, mtime):
        rec["result"] = "existing"
    elif factory.has_valid_failed_thumbnail(uri, mtime):
        rec["result"] = "failed-before"
    elif not factory.can_thumbnail(uri, mime, mtime):
        rec["result"] = "cannot"
    else:
        start = time.monotonic()
        try:
            pixbuf = factory.generate_thumbnail(uri, mime, None)
            factory.save_thumbnail(pixbuf, uri, mtime, None)
            rec["result"] = "thumbnail"
            rec["thumbnail"] = factory.lookup(uri, mtime)
        except GLib.Error as exc:
            rec["result"] = "failed"
            rec["error"] = exc.message
            factory.create_failed_thumbnail(uri, mtime, None)
        rec["seconds"] = round(time.monotonic() - start, 3)
    return rec


def main(paths: list[str]) -> None:
    # Nautilus 43 asks for large (256 px) thumbnails (nautilus-thumbnails.c).
    factory = GnomeDesktop.DesktopThumbnailFactory.new(GnomeDesktop.DesktopThumbnailSize.LARGE)
    print(json.dumps([thumbnail(factory, p) for p in paths]))


if __name__ == "__main__":
    main(sys.argv[1:])
