"""Safe names: terminal escape sequences in free text are removed whole."""

from __future__ import annotations

import pytest

from rcfs.namespace.naming import clean


@pytest.mark.parametrize(("raw", "shown"), [
    ("RoboCaller\x1b[31m WIN\x1b[0m", "RoboCaller WIN"),  # SGR colour, the example
    ("Bob\x1b[1;4;38;5;196mJones", "BobJones"),
    ("a\x1b]0;pwned title\x07b", "ab"),  # OSC window title, BEL-terminated
    ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),  # OSC 8 hyperlink, ST
    ("x\x1b(By", "xy"),  # charset designation
    ("\x9b2Jclear", "clear"),  # C1 CSI
    ("trailing\x1b[", "trailing"),
    ("plain [31m text", "plain [31m text"),  # no ESC: ordinary text stays
])
def test_escape_sequences_are_removed_whole(raw: str, shown: str) -> None:
    assert clean(raw) == shown
    assert "\x1b" not in clean(raw)
