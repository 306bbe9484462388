"""FUSE glue: pyfuse3 ``Operations`` over the namespace and the content engine.

Thin on purpose: handlers turn an inode into a path, ask the namespace view
(``rcfs.namespace.view``) for the ``Entry`` there, ask the content reader for bytes and
sizes, and map every domain error to an errno through one table (``errors``). No HTTP code
lives here; ``ops`` lists where each group of handlers is.
"""
