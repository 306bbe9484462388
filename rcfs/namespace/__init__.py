"""The namespace: which folders and files an account shows, named how, kept fresh how.

``naming`` and ``layout`` are pure (objects -> names -> ``Entry`` trees); ``index`` holds
the metadata fetched through ``rcfs.api`` (sync, persisted for offline remounts) and
rebuilds each extension's tree when it changes; ``view`` resolves any path of the mount
(the index's folders plus ``.rcfs``, the outboxes and the plugins' folders). Nothing here
knows about FUSE.
"""
