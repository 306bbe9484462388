"""Which message-store record an outbox job's unconfirmed POST created (``matches``).

The sender resolves a job whose POST has an unknown outcome by looking for it in the message
store (see ``rcfs.outbox.sender``): the same type, recipient and content. This module is that
comparison, kept apart so it can be read, and tested, on its own.
"""

from __future__ import annotations

from rcfs.api.models import Message
from rcfs.api.uploads import safe_upload_name
from rcfs.outbox.journal import Job


def text_of(job: Job) -> str | None:
    """The text a job sends (its text parts joined), or None for a job with none."""
    texts = [d.text for d in job.docs if d.text is not None]
    return "\n".join(texts) if texts else None


def matches(job: Job, m: Message) -> bool:
    """Whether message-store record ``m`` is what ``job``'s unconfirmed POST created."""
    if m.direction != "Outbound":
        return False
    to = {p.phone_number for p in m.to if p.phone_number}
    if to != {job.to}:
        return False
    opts = job.options
    if job.kind == "fax":
        if m.type != "Fax":
            return False
        if opts.get("fax_resolution") and m.fax_resolution \
                and m.fax_resolution != opts["fax_resolution"]:
            return False
        if opts.get("cover_index") and m.cover_index is not None \
                and m.cover_index != int(opts["cover_index"]):
            return False
        return not (opts.get("cover_page_text") and m.cover_page_text is not None
                    and m.cover_page_text != opts["cover_page_text"])
    if m.type != "SMS":
        return False
    sender = m.from_.phone_number if m.from_ else None
    if opts.get("from") and sender and sender != opts["from"]:
        return False
    if (text_of(job) or None) != (m.subject or None):
        return False
    want = sorted((safe_upload_name(d.name, f"file{i}"), d.size)
                  for i, d in enumerate(job.docs, 1) if d.text is None)
    got = [a for a in m.attachments if a.type == "MmsAttachment"]
    if len(got) != len(want):
        return False
    have = sorted((a.file_name or "", a.size if a.size is not None else -1) for a in got)
    for (wn, ws), (hn, hs) in zip(want, have, strict=True):
        if (hn and hn != wn) or (hs >= 0 and hs != ws):
            return False
    return True
