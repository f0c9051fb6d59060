"""HTTP on loopback: `/ctrl/1.0/<Query>[/<arg>]`, the token, the body, the envelopes."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from .core import Emulator
from .misreplies import MISREPLIES
from .rules import ApiFailure, invalid

MAX_BODY = 16 << 20


class _Handler(BaseHTTPRequestHandler):
    emulator: Emulator

    def log_message(self, *args) -> None:  # quiet: tests read their own output
        pass

    def _reply(self, status: int, payload: dict) -> None:
        self._send(status, "application/json", json.dumps(payload).encode())

    def _send(self, status: int, ctype: str, raw: bytes, length: Optional[int] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw) if length is None else length))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        """The request's JSON, or a 400: a bad length or body never goes unanswered."""
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit() or int(raw_length) > MAX_BODY:
            raise invalid(f"bad Content-Length {raw_length[:40]!r}")
        length = int(raw_length)
        raw = self.rfile.read(length) if length else b""
        if len(raw) != length:
            raise invalid(f"body shorter than its Content-Length {length}")
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise invalid(f"malformed JSON body: {e}") from None

    def _misreply(self, shape: str, query: str, args: list, body: Any) -> None:
        emu = self.emulator
        if shape in ("slow", "hang"):
            with emu.lock:
                emu.held += 1
            try:
                emu.release.wait(60)  # bounded: a forgotten release must not wedge a test
                if shape == "slow":
                    self._answer(query, args, body)
            finally:
                with emu.lock:
                    emu.held -= 1
                    emu.idle.notify_all()
            return
        status, ctype, raw, length = MISREPLIES[shape]
        self.close_connection = True
        self._send(status, ctype, raw, length)

    def _answer(self, query: str, args: list, body: Any) -> None:
        emu = self.emulator
        try:
            data = emu.handle(query, args, body)
        except ApiFailure as e:
            return self._reply(e.status, e.envelope())
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            return self._reply(400, invalid(f"malformed request: {e}").envelope())
        try:
            self._reply(200, {"generation": emu.generation, "data": data})
        except OSError:
            pass  # the client gave up waiting; the change stands, as on the real API

    def _route(self) -> Optional[tuple[str, list]]:
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if parts[:2] != ["ctrl", "1.0"] or len(parts) < 3:
            return None
        parts = parts[2:]
        if parts[0] == "MultiCluster":
            parts = parts[1:]
        return parts[0], parts[1:]

    def _serve(self, method: str) -> None:
        emu, route = self.emulator, self._route()
        if route is None:
            return self._reply(404, invalid("bad path").envelope())
        query, args = route
        with emu.lock:
            emu.calls[query] += 1
        if self.headers.get("Authorization") != f"Storpool v1:{emu.token}":
            return self._reply(401, ApiFailure("authError", "Authorization failed").envelope())
        try:
            body = self._body() if method == "POST" else None
        except ApiFailure as e:
            self.close_connection = True
            return self._reply(e.status, e.envelope())
        shape = emu.take_misreply(query)
        if shape is not None:
            return self._misreply(shape, query, args, body)
        self._answer(query, args, body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops the SYNs of a fleet's concurrent clients,
    # which then wait the kernel's 1 s SYN retransmit: the API itself serves many at once
    request_queue_size = 128


def serve(emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Start serving in a daemon thread; `server.server_address[1]` is the port."""
    handler = type("Handler", (_Handler,), {"emulator": emulator})
    server = _Server((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
