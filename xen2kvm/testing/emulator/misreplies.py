"""Replies that are not StorPool's envelope, as a proxy or a broken API sends them: the
emulator's test hooks (`Emulator.misreply`) for the misbehaving-API tests."""

from __future__ import annotations

from typing import Optional

# replies that are not the envelope, as a proxy or a broken API sends them (test hooks):
# (status, content type, body, declared length or None for the real one)
MISREPLIES: dict[str, tuple[int, str, bytes, Optional[int]]] = {
    "500-no-error": (500, "application/json", b'{"generation": 1}', None),
    "500-html": (500, "text/html", b"<html><body>502 Bad Gateway</body></html>", None),
    "500-empty": (500, "application/json", b"", None),
    "500-error-string": (500, "application/json", b'{"error": "boom"}', None),
    "200-list": (200, "application/json", b'[{"name": "x"}]', None),
    "200-no-data": (200, "application/json", b'{"generation": 1}', None),
    "200-null-data": (200, "application/json", b'{"generation": 1, "data": null}', None),
    "200-data-string": (200, "application/json", b'{"generation": 1, "data": "ok"}', None),
    "200-garbage": (200, "text/plain", b"garbage}{", None),
    "200-empty": (200, "application/json", b"", None),
    "200-truncated-json": (200, "application/json", b'{"generation": 1, "da', None),
    "200-short-body": (200, "application/json", b'{"generation": 1,', 4096),
    "slow": (200, "", b"", None),
    "hang": (200, "", b"", None),
}
