"""rcfs: a FUSE filesystem that mounts a RingCentral account.

Layers, one way only: FUSE glue -> namespace -> content/cache (``rcfs.content``) -> API client
(``rcfs.api``). ``rcfs.emulator`` is a separate process the product never imports.
"""

__version__ = "0.1.0"
