"""The download pump's block buffer: every block and every partial copy is exactly the
bytes a plain bytearray would hold, whatever the chunk sizes the socket delivered."""

from __future__ import annotations

import random

from rcfs.content.reader_state import _BlockBuffer


def test_blocks_and_copies_match_a_bytearray() -> None:
    rng = random.Random(7)
    for _ in range(200):
        bs = rng.choice([1, 7, 64, 1000])
        buf, model = _BlockBuffer(), bytearray()
        for _ in range(rng.randint(1, 30)):
            chunk = rng.randbytes(rng.randint(0, 3 * bs))
            buf.add(chunk)
            model += chunk
            assert len(buf) == len(model)
            if model:
                lo = rng.randrange(len(model))
                hi = rng.randint(lo, len(model))
                assert buf.copy(lo, hi) == bytes(model[lo:hi])
            while len(buf) >= bs:
                block = buf.take(bs)
                assert block == bytes(model[:bs])
                del model[:bs]
        assert buf.take(len(buf)) == bytes(model)
        assert len(buf) == 0


def test_a_chunk_that_is_exactly_a_block_is_not_copied() -> None:
    buf = _BlockBuffer()
    chunk = bytes(range(256)) * 4
    buf.add(chunk)
    assert buf.take(len(chunk)) is chunk


def test_take_more_than_held_returns_what_is_there() -> None:
    buf = _BlockBuffer()
    buf.add(b"abc")
    buf.add(b"de")
    assert buf.take(10) == b"abcde"
    assert len(buf) == 0 and buf.take(4) == b""
