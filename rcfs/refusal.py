"""Requests refused for a reason the user can fix, said by what is wrong, not by errno.

The outbox, the namespace view and the namespace's plugins (exports, pins) refuse
requests: a file of a type that cannot be faxed, a name already taken, a folder that is not
empty, a read status other than Read or Unread. They raise a
``Refused`` subclass whose ``kind`` says what is wrong and whose message says it in words
for the log. Which errno a program then sees is decided in one place, the FUSE layer's
table (``rcfs.fs.errors.ERRNO_TABLE``), so no layer below FUSE picks errno values.
"""

from __future__ import annotations

import enum


class Refusal(enum.Enum):
    """What is wrong with a refused request (one row each in the errno table)."""

    INVALID = "invalid"  # unsupported or unrecognisable content, a bad name or value
    TOO_BIG = "too big"  # bytes or pages over a limit
    TOO_MANY_PARTS = "too many parts"  # more attachments than one message takes
    EMPTY = "empty"  # no bytes, only white space, no document
    NOT_UTF8 = "not UTF-8"  # a text that is not UTF-8
    TEXT_TOO_LONG = "text too long"  # an SMS text over its length limit
    NAME_TOO_LONG = "name too long"
    UNSUPPORTED = "unsupported"  # an attribute this place does not have
    NOT_PERMITTED = "not permitted"  # a read-only attribute, a change made the wrong way
    NOT_HERE = "not here"  # the layout takes no such thing at this place
    READ_ONLY = "read-only"  # part of the tree users cannot change (a finished job)
    NOT_FOUND = "not found"
    EXISTS = "exists"
    BUSY = "busy"  # being written, queued or sent: not now
    IS_FOLDER = "is a folder"  # a job folder where a file was meant
    NOT_EMPTY = "not empty"
    NO_SPACE = "no space"  # over a storage budget (pinning more than the cache holds)
    NOT_READY = "not ready"  # a service that has not started yet: try again
    BAD_HANDLE = "bad handle"  # a handle that is not (or no longer) open


class Refused(Exception):
    """A refused request: ``kind`` decides the errno, the message goes to the log."""

    def __init__(self, kind: Refusal, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
