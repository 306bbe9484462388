"""FUSE glue: pyfuse3 ``Operations`` over the namespace and the content engine.

Thin on purpose: handlers resolve an inode to a namespace ``Entry``, ask the content
reader for bytes, and map every domain error to an errno through one table (``errors``).
No HTTP code lives here.
"""
