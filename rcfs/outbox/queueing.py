"""Options and queueing: what a job is sent with, and the checks it must pass as a whole.

Options are xattrs on the channel folder, the recipient folder or the job itself (most
specific wins), frozen when the job is queued: ``user.rc.fax_resolution`` (High|Low),
``user.rc.cover_index`` (0 = none, 1-13, 15-28), ``user.rc.cover_page_text``,
``user.rc.from`` (SMS/MMS sender), ``user.rc.answering_rule`` (greetings: default
``business-hours-rule``; ``none`` = store without applying).
"""

from __future__ import annotations

from rcfs.outbox.journal import Job, Rel, Store
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.validate import OPTION_XATTRS, Part, check_fax_job, text_job
from rcfs.refusal import Refusal


def effective_options(store: Store, ext: str, parent: Rel, own: dict[str, str]
                      ) -> dict[str, str]:
    """The options of a job: the channel folder's, the recipient folder's, then its own."""
    merged: dict[str, str] = {}
    for source in (store.folders.get((ext, parent[:1]), {}),
                   store.folders.get((ext, parent), {}) if len(parent) > 1 else {},
                   own):
        for key, value in source.items():
            if key in OPTION_XATTRS:
                if value:
                    merged[OPTION_XATTRS[key]] = value
                else:
                    merged.pop(OPTION_XATTRS[key], None)
    return merged

def check_job(channel: str, parts: list[Part], options: dict[str, str]) -> None:
    if channel == "Fax":
        check_fax_job(parts, cover=options.get("cover_index", "0") not in ("", "0"))
    elif channel == "Text":
        text_job(parts)
    elif not parts:
        raise OutboxError(Refusal.EMPTY, "no greeting audio")

def queue(store: Store, job: Job) -> None:
    """Freeze the options and make the job sendable (caller saves it)."""
    job.options = effective_options(store, job.ext, job.parent, job.xattrs)
    check_job(job.channel, [Part(d.name, d.ctype, d.size, d.pages, d.text)
                                  for d in job.docs], job.options)
    job.state = "queued"
    job.next_try = 0.0
    job.error = None
    what = {"fax": "fax", "sms": "SMS", "mms": "MMS", "greeting": "greeting"}[job.kind]
    job.note(f"queued as {what}" + (f" to {job.to}" if job.to else "") + ": "
             + ", ".join(d.name for d in job.docs))
