"""The emulator's multipart parser (rcfs.emulator.multipart), in process, on the shapes the
send endpoints receive: parts without Content-Disposition, bare-LF bodies (MSG-350), and a
form-data body written by hand. The sends themselves: tests/emulator/test_emulator_send.py.
"""

from __future__ import annotations

import io

from PIL import Image

from tests.emulator_support import raw_multipart


def test_multipart_parser_on_send_shapes() -> None:
    """The parser keeps parts without Content-Disposition and bare-LF bodies (MSG-350)."""
    from rcfs.emulator.multipart import parse_multipart

    body = (b"--b\nContent-Type: application/json\n\n{}\n--b\n"
            b"Content-Type: text/plain\n\nhi\n--b\n"
            b'Content-Disposition: attachment; filename="a b.txt"\n\n\n--b--\n')
    parts = parse_multipart("multipart/mixed; boundary=b", body)
    assert [p.content_type for p in parts] == ["application/json", "text/plain", None]
    assert parts[1].disposition is None and parts[1].data == b"hi"
    assert parts[2].filename == "a b.txt" and parts[2].data == b""
    image = io.BytesIO()
    Image.new("RGB", (3, 2)).save(image, "PNG")
    headers, raw = raw_multipart([({"Content-Disposition": 'form-data; name="f"; filename="x.png"',
                           "Content-Type": "image/png"}, image.getvalue())], "form-data")
    [part] = parse_multipart(headers["Content-Type"], raw)
    assert part.data == image.getvalue() and part.name == "f"
