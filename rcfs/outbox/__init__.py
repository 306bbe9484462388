"""The Outbox: send faxes, texts (SMS/MMS) and greetings by writing files, exactly once.

``folders.Outbox`` is what the FUSE layer talks to (``rcfs.outbox.protocol.OutboxFs``):
``view`` builds the tree, ``writing`` and ``moves`` do the writes and renames over the
shared ``state``; ``validate`` decides what is accepted, ``journal`` keeps it durably,
``sender`` sends it and follows it to a final status (``matching`` finds what an unconfirmed
send created). Namespace level: uses ``rcfs.api``, never pyfuse3.
"""

from rcfs.outbox.folders import Outbox
from rcfs.outbox.sender import Settings

__all__ = ["Outbox", "Settings"]
