"""What came back from the StorPool API when it was not the documented envelope.

The bindings parse the reply themselves and fail in their own ways on a reply that is not
`{"generation", "data"}` or `{"error": {...}}`: a JSON decode error (non-JSON or empty body),
KeyError/TypeError/AttributeError (a list, a missing `data` or `error`). The HTTP status and the
parsed body are still in the bindings' frame when that happens; they are read from the
traceback so that the one line can say what came back without re-implementing the bindings.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any, Optional

_NOTHING = object()


def _reply_of(exc: BaseException) -> tuple[Optional[int], Any]:
    status, body = None, _NOTHING
    tb = exc.__traceback__
    while tb is not None:
        local = tb.tb_frame.f_locals
        if "response" in local and "jres" in tb.tb_frame.f_code.co_varnames:
            status = getattr(local["response"], "status", None)
            body = local.get("jres", _NOTHING)
        tb = tb.tb_next
    return status, body


def _shape(status: Optional[int], body: Any) -> str:
    if isinstance(body, list):
        return "a JSON list instead of an object"
    if not isinstance(body, dict):
        return f"a JSON {type(body).__name__} instead of an object"
    if "error" in body:
        return "an `error` that is not an object"
    if status != 200:
        return "no `error` object"
    return "no `data`"


def describe(exc: BaseException) -> str:
    """`HTTP 500, non-JSON body` and the like."""
    if isinstance(exc, BadData):
        return f"HTTP 200, {exc}"
    status, body = _reply_of(exc)
    prefix = f"HTTP {status}, " if status is not None else ""
    doc = getattr(exc, "doc", None)
    if isinstance(exc, ValueError) and isinstance(doc, str):
        return prefix + ("empty body" if not doc.strip() else "non-JSON body")
    if body is _NOTHING:
        return prefix + f"a reply that is not the documented envelope ({type(exc).__name__})"
    return prefix + _shape(status, body)


# the fields this tool reads from each listing, with their JSON types
READ_FIELDS = {"volumesList": {"name": str, "size": int},
               "volumeList": {"name": str, "size": int},
               "attachmentsList": {"volume": str, "client": int}}


class BadData(TypeError):
    """The envelope was right but `data` was not what the call returns."""


def _json_type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_data(method: str, data: Any, mutating: bool) -> None:
    """Reads return lists of objects with the fields used, changes an object."""
    if mutating:
        if not isinstance(data, dict):
            raise BadData(f"`data` is {_json_type(data)}, not an object")
        return
    if not isinstance(data, list):
        raise BadData(f"`data` is {_json_type(data)}, not a list")
    for item in data:
        if not isinstance(item, dict):
            raise BadData(f"a `data` item is {_json_type(item)}, not an object")
        for key, kind in READ_FIELDS.get(method, {}).items():
            if not isinstance(item.get(key), kind) or isinstance(item.get(key), bool):
                raise BadData(f"a `data` item's {key} is {_json_type(item.get(key))}")


def connection_failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no reply within {timeout:g} s (XEN2KVM_API_TIMEOUT)"
    if isinstance(exc, ConnectionRefusedError):
        return "cannot reach it (connection refused)"
    if isinstance(exc, http.client.IncompleteRead):
        return "the reply was cut short"
    if isinstance(exc, OSError):
        return f"the connection failed ({exc.strerror or type(exc).__name__})"
    return f"a broken HTTP reply ({type(exc).__name__})"
