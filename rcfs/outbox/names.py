"""Names rcfs shows for outbox jobs once they are sent or failed: the same safety rules as
every other name in the tree (``rcfs.namespace.naming``), with room for the suffix rcfs adds.

A queued file keeps the exact name its writer used (the writer looks it up by that name until
it closes it). Under ``Sent/`` and ``Failed/`` a job is shown under a safe name: no control
characters or escape sequences (``naming.clean``), and at most 255 bytes *including*
``.status.txt`` (``naming.fit``), so ``cp -r Failed/`` works on any Linux file system. The
name the user wrote is kept, escaped, in the ``user.rc.original_name`` xattr and the status
text.
"""

from __future__ import annotations

from rcfs.namespace.naming import NAME_MAX, clean, fit

STATUS_SUFFIX = ".status.txt"
ORIGINAL_NAME_XATTR = "user.rc.original_name"
SHOWN_MAX = NAME_MAX - len(STATUS_SUFFIX.encode())
_EXT_MAX = 16  # bytes of a kept extension (".pdf", ".docx"): longer tails are not extensions


def _split(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode()) + 1 > _EXT_MAX or not ext.isalnum():
        return name, ""
    return stem, "." + ext


def shown_name(name: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """The safe, unique name of a finished job (``name (2).pdf`` when taken), short enough
    that ``<name>.status.txt`` fits in 255 bytes."""
    stem, ext = _split(clean(name) or "unnamed")
    n = 1
    while True:
        extra = f" ({n})" if n > 1 else ""
        candidate = fit(stem, extra + ext, SHOWN_MAX)
        if candidate not in taken:
            return candidate
        n += 1


def escaped(text: str) -> str:
    """``text`` with control, format and other invisible characters as ``\\xNN``/``\\uNNNN``
    (a backslash doubled), so a terminal showing it shows it, never obeys it."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and ch not in "\u2028\u2029":
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)
