"""What the Outbox folder shows: the tree of one mailbox's outbox, built from the jobs.

Layout (below ``<extension>/Outbox``)::

    README.txt                      how it works (read-only)
    Fax/<+E164>/contract.pdf        a file here is a fax to that number
    Fax/<+E164>/.bundle/{a,b}.pdf   a job folder (dot-name = draft): renamed to ``bundle``
                                    it leaves as ONE fax with all its documents, by name
    Text/<+E164>/hello.txt          plain text: an SMS; any other file: an MMS
    Text/<+E164>/.msg/{t.txt,p.jpg} a job folder: one MMS with that text and attachment(s)
    Greetings/Voicemail.wav         a custom greeting of that type (WAV or MP3)
    Sent/<same path>                finished jobs, each with ``<name>.status.txt`` beside it
    Failed/<same path>

Status is read-only xattrs: ``user.rc.status``, ``user.rc.error``, ``user.rc.job_id``,
``user.rc.message_id``... The operations on this tree are in ``rcfs.outbox.folders``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rcfs.namespace.entries import Entry
from rcfs.outbox.journal import Job, Rel, Store
from rcfs.outbox.names import ORIGINAL_NAME_XATTR, STATUS_SUFFIX, escaped, shown_name
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.state import BOXES, CHANNELS, NUMBERED, README, OutboxState, rel_of
from rcfs.outbox.validate import OPTION_XATTRS, greeting_type, normalize_number


class NumberDir(dict[str, Entry]):
    """Children keyed by E.164 number that also answer to other spellings of it."""

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        if found is None:
            number = normalize_number(key)
            if number is not None:
                found = super().get(number)
        return default if found is None else found


def build_tree(state: OutboxState, ext: str) -> Entry:
    """Everything below one mailbox's ``Outbox``: folders, jobs, status files, files being
    written."""
    store = state.store
    root = Entry.directory("Outbox", 0.0)
    root.add(Entry(README, 0.0, data=README_TEXT.encode()))
    dirs: dict[Rel, Entry] = {}

    def folder(rel: Rel) -> Entry:
        found = dirs.get(rel)
        if found is not None:
            return found
        parent = folder(rel[:-1]) if len(rel) > 1 else root
        entry = Entry.directory(rel[-1], 0.0, writable=True)
        if len(rel) == 1 and rel[0] in NUMBERED or len(rel) == 2 and rel[0] in BOXES \
                and rel[1] in NUMBERED:
            entry.children = NumberDir()
        entry.xattrs = dict(store.folders.get((ext, rel), {}))
        parent.add(entry)
        dirs[rel] = entry
        return entry

    for name in (*CHANNELS, *BOXES):
        folder((name,))
    for (fext, rel) in store.folders:
        if fext == ext:
            folder(rel)
    for job in state.jobs.of_mailbox(ext):
        rel = rel_of(job)
        parent = folder(rel[:-1])
        if job.show_file:
            parent.add(job_entry(store, job, rel[-1]))
        if job.is_final and job.show_status:
            parent.add(Entry(rel[-1] + STATUS_SUFFIX, job.final_at or job.updated,
                             data=status_text(job).encode()))
    for w in state.live_writers(ext):
        parent = folder(w.rel[:-1])
        if w.rel[-1] not in (parent.children or {}):
            parent.add(Entry(w.rel[-1], w.created, local_path=str(w.tmp), local_size=w.size,
                             writable=True, xattrs={"user.rc.status": "writing", **w.xattrs}))
    return root


def job_entry(store: Store, job: Job, name: str) -> Entry:
    """A job's file, or its job folder with the documents; status as read-only xattrs."""
    x = dict(job.xattrs)
    x.update({f"user.rc.{k}": v for k, v in job.options.items()
              if f"user.rc.{k}" in OPTION_XATTRS and v})
    x["user.rc.status"] = job.state
    x["user.rc.job_id"] = job.id
    x[ORIGINAL_NAME_XATTR] = escaped(job.name)
    x["user.rc.kind"] = job.kind
    if job.to:
        x["user.rc.to"] = job.to
    if job.attempts:
        x["user.rc.attempts"] = str(job.attempts)
    if job.message_id:
        x["user.rc.message_id"] = job.message_id
    if job.remote_status:
        x["user.rc.remote_status"] = job.remote_status
    if job.error:
        x["user.rc.error"] = job.error
    writable = not job.is_final
    if not job.folder:
        doc = job.docs[0]
        return Entry(name, job.updated, local_path=str(store.file_path(doc.file_id)),
                     local_size=doc.size, writable=writable, xattrs=x)
    entry = Entry.directory(name, job.updated, writable=True)
    entry.xattrs = x
    shown: set[str] = set()
    for doc in job.docs:
        doc_name = doc.name
        if job.is_final:  # the documents of a finished job folder: safe names too
            doc_name = shown_name(doc.name, shown)
            shown.add(doc_name)
        entry.add(Entry(doc_name, doc.mtime or job.updated,
                        local_path=str(store.file_path(doc.file_id)),
                        local_size=doc.size, writable=writable,
                        xattrs={"user.rc.status": job.state, "user.rc.job_id": job.id}))
    return entry


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def status_text(job: Job) -> str:
    """The ``.status.txt`` of a finished job, in plain words."""
    what = {"fax": "Fax", "sms": "Text message (SMS)", "mms": "Picture message (MMS)",
            "greeting": "Greeting"}[job.kind]
    head = f"{what} to {job.to}" if job.to else f"{what} {greeting_label(job)}"
    if job.state == "failed":
        verdict = "NOT SENT" if not job.message_id else "FAILED"
        result = f"{verdict}: {job.error or 'unknown error'}"
    elif job.state == "delivered":
        result = {"fax": "sent: the fax went through",
                  "greeting": f"uploaded (greeting id {job.message_id})"}.get(
            job.kind, "delivered to the recipient's phone")
    else:
        result = f"sent (RingCentral status {job.remote_status or 'unknown'})"
    lines = [head, "", f"Result:      {result}", f"File name:   {job.name}"]
    if job.error_code or job.http_status:
        code = " ".join(x for x in (f"HTTP {job.http_status}" if job.http_status else "",
                                    job.error_code or "") if x)
        lines.append(f"Error code:  {code}")
    lines.append("Documents:   " + ", ".join(f"{d.name} ({d.size} bytes, {d.ctype})"
                                             for d in job.docs))
    if job.options:
        lines.append("Options:     " + ", ".join(f"{k}={v}" for k, v in
                                                 sorted(job.options.items())))
    lines += [f"Job id:      {job.id}",
              f"Message id:  {job.message_id or '-'}",
              f"RingCentral: {job.remote_status or '-'}",
              f"Attempts:    {job.attempts}",
              f"Queued:      {_when(job.created)}",
              f"Finished:    {_when(job.final_at)}"]
    if job.pages:
        lines.append(f"Pages:       {job.pages}")
    lines += ["", "History:"]
    lines += [f"  {_when(t)}  {text}" for t, text in job.history]
    # Names and server messages are the user's or RingCentral's text: escaped, so `cat` of
    # a status file can never move the cursor or recolour the terminal.
    return "\n".join(escaped(line) for line in lines) + "\n"


def greeting_label(job: Job) -> str:
    try:
        return greeting_type(job.name)
    except OutboxError:
        return job.name


README_TEXT = """\
rcfs Outbox: send faxes, texts and greetings by writing files.

  mkdir Fax/+12125557464                   a recipient folder (E.164 number)
  cp contract.pdf Fax/+12125557464/        -> one fax with that document
  mkdir Text/+12125557464
  echo "On my way" > Text/+12125557464/eta.txt    -> an SMS
  cp photo.jpg Text/+12125557464/          -> an MMS
  cp hello.wav Greetings/Voicemail.wav     -> your custom voicemail greeting

Several documents in one fax (or text + pictures in one MMS): fill a draft job
folder (its name starts with a dot), then rename it without the dot:
  mkdir Fax/+12125557464/.offer
  cp cover.pdf terms.pdf Fax/+12125557464/.offer/
  mv Fax/+12125557464/.offer Fax/+12125557464/offer      -> one fax, documents by name
Any file whose name starts with a dot is a draft and is never sent until renamed.

A file is sent once it is closed. If it cannot be sent (wrong type, too big, empty,
text too long...) close fails and cp prints why; nothing is sent.
While it is waiting or being sent it stays here:  getfattr -d <file>  shows
user.rc.status (queued, sending, sent) and user.rc.error. When finished it moves to
Sent/ or Failed/ with <name>.status.txt beside it saying what happened.
Delete a queued file to cancel it. Move a file out of Failed/ back into a recipient
folder to send it again.

Options (setfattr -n NAME -v VALUE on Fax/, Text/, a recipient folder or a draft):
  user.rc.fax_resolution   High | Low
  user.rc.cover_index      0 (no cover page), 1-13, 15-28
  user.rc.cover_page_text  text printed on the cover page
  user.rc.from             the number texts are sent from
  user.rc.answering_rule   greeting: the rule it applies to (default business-hours-rule;
                           none = only store it)
`rcfs status` lists what is waiting.
"""
