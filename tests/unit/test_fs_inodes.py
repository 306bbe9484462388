"""The inode table (rcfs/fs/inodes.py): stable numbers, lookup counts, forget, renames."""

from __future__ import annotations

from rcfs.fs.inodes import ROOT, InodeTable

A = ("101 Alice", "Fax", "2026-11", "a.pdf")
B = ("101 Alice", "Fax", "2026-11", "b.pdf")


def test_numbers_are_stable_and_never_reused() -> None:
    t = InodeTable()
    assert t.inode(()) == ROOT and t.path(ROOT) == ()
    a, b = t.inode(A), t.inode(B)
    assert len({ROOT, a, b}) == 3
    assert t.inode(A) == a and t.path(a) == A and t.known(B) == b
    t.drop(a)  # unreferenced: gone
    assert t.path(a) is None and t.known(A) is None
    again = t.inode(A)
    assert again not in (ROOT, a, b)  # a new number: the kernel may still cache the old one


def test_lookup_counts_keep_an_inode_until_the_kernel_forgets_it() -> None:
    t = InodeTable()
    a = t.inode(A)
    for _ in range(3):
        t.looked_up(a)
    assert not t.forget(a, 2) and t.referenced(a)
    t.drop(a)  # still referenced: a drop is refused
    assert t.path(a) == A
    assert t.forget(a, 1) and not t.referenced(a)
    assert t.forget(a, 5)  # more forgets than lookups never go negative
    t.looked_up(a)
    assert t.referenced(a) and not t.forget(a, 0)
    assert t.referenced(ROOT)
    t.drop(ROOT)
    assert t.path(ROOT) == ()


def test_rename_moves_inodes_and_replaces_the_target() -> None:
    t = InodeTable()
    d_old, d_new = ("x", "Outbox", ".draft"), ("x", "Outbox", "fax")
    f = t.inode((*d_old, "page1.pdf"))
    d = t.inode(d_old)
    victim = t.inode(d_new)
    t.rename(d_old, d_new)
    assert t.path(d) == d_new and t.path(f) == (*d_new, "page1.pdf")
    assert t.known(d_old) is None and t.path(victim) is None
