"""A StorPool API emulator on loopback, for tests, the kernel lab and rehearsals on a laptop.

It speaks `/ctrl/1.0/<Query>` with StorPool's envelopes (`{"generation", "data"}` and
`{"error": {"name", "descr", "transient"}}`), checks `Authorization: Storpool v1:<token>`, and
enforces the API's rules (docs/storpool.md): name and tag charsets and lengths, sizes in
multiples of 512, no shrink without `shrinkOk`, objectExists / objectDoesNotExist, and no
delete, shrink or rename of an attached volume ("... is open at client N"). Volume data lives in
sparse files; a clone copies only the allocated extents of its parent. Attaching a volume to a
client makes `<dev root>/storpool/<name>` appear: a real loop device when running as root with
loop devices, else a symlink to the data file.

    SP_AUTH_TOKEN=T xen2kvm-storpool-emulator --listen 127.0.0.1:8181 --data DIR --dev-root DIR
    xen2kvm-storpool-emulator --token-file FILE ...   (never the token in argv: `ps` shows it)

A refused request changes nothing; a malformed one gets HTTP 400 in the error envelope;
SIGTERM/SIGINT detach its loop devices; its files are private (0600).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from .misreplies import MISREPLIES

NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TAG_NAME_RE = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TAG_VALUE_RE = re.compile(r"^[A-Za-z0-9_\-.:]*$")
READS = {"VolumesList", "Volume", "AttachmentsList", "VolumeGetInfo", "SnapshotsList",
         "Snapshot"}
SNAP_NAME_RE = re.compile(r"^\*?[A-Za-z0-9_\-.:@]+$")
MAX_BODY = 16 << 20
READS.add("VolumeTemplatesStatus")
DEFAULT_CAPACITY = 100 * 1024 ** 4  # raw bytes of the one placement group, "default"


class ApiFailure(Exception):
    def __init__(self, name: str, descr: str, status: int = 500, transient: bool = False):
        super().__init__(descr)
        self.name, self.descr, self.status, self.transient = name, descr, status, transient


def _private(path: Path, mode: str):
    """Volume images and state hold guests' data: owner-only, whatever the umask."""
    flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if "w" in mode else 0)
    return open(os.open(path, flags, 0o600), mode)


def _resize(path: Path, size: int) -> None:
    """Set a volume file's size, or refuse without leaving a change behind."""
    try:
        with _private(path, "r+b") as f:
            f.truncate(size)
    except (OSError, OverflowError) as exc:
        raise ApiFailure("invalidParam", f"size {size} is too large for this cluster "
                         f"({getattr(exc, 'strerror', None) or exc})", 400) from None


def sparse_copy(src: Path, dst: Path) -> None:
    """Copy only the allocated extents: a 2 TiB parent with little data clones in no time."""
    with open(src, "rb") as fi, _private(dst, "wb") as fo:
        size = os.fstat(fi.fileno()).st_size
        fo.truncate(size)
        pos = 0
        while pos < size:
            try:
                pos = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(fi.fileno(), pos, os.SEEK_HOLE)
            fi.seek(pos)
            fo.seek(pos)
            while pos < end:
                chunk = fi.read(min(end - pos, 8 << 20))
                fo.write(chunk)
                pos += len(chunk)


class Devices:
    """Makes attached volumes appear under `<root>/storpool/`."""

    def __init__(self, root: Path, use_loop: Optional[bool] = None):
        self.dir = Path(root) / "storpool"
        self.dir.mkdir(parents=True, exist_ok=True)
        if use_loop is None:
            use_loop = os.geteuid() == 0 and Path("/dev/loop-control").exists()
        self.use_loop = use_loop
        self.loops: dict[str, str] = {}

    def attach(self, name: str, path: Path) -> None:
        link = self.dir / name
        if link.is_symlink() or link.exists():
            return
        target = str(path)
        if self.use_loop:
            import sh

            target = str(sh.losetup("--find", "--show", "--direct-io=off", str(path))).strip()
            self.loops[name] = target
        os.symlink(target, link)

    def detach(self, name: str) -> None:
        link = self.dir / name
        if link.is_symlink():
            link.unlink()
        loop = self.loops.pop(name, None)
        if loop:
            import sh

            sh.losetup("-d", loop)

    def resized(self, name: str) -> None:
        loop = self.loops.get(name)
        if loop:
            import sh

            sh.losetup("-c", loop)

    def renamed(self, old: str, new: str) -> None:
        if (self.dir / old).is_symlink():
            os.rename(self.dir / old, self.dir / new)
            if old in self.loops:
                self.loops[new] = self.loops.pop(old)


class Emulator:
    def __init__(self, data: Path, token: str, dev_root: Path, use_loop: Optional[bool] = None,
                 capacity: int = DEFAULT_CAPACITY):
        self.data = Path(data)
        self.capacity = capacity  # raw bytes; the free space is what the volume files leave
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.token = token
        self.devices = Devices(dev_root, use_loop)
        self.lock = threading.RLock()
        self.volumes: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[int, str]] = {}
        self.generation = 0
        self.next_id = 1
        self.calls: collections.Counter = collections.Counter()
        self.faults: dict[str, list] = {}
        self.misreplies: dict[str, list] = {}
        self.release = threading.Event()  # lets "slow"/"hang" replies go
        self.held = 0  # requests waiting on `release`
        self.idle = threading.Condition(self.lock)  # notified when `held` drops
        self.change_fault: Optional[int] = None
        self._load()

    # persistence -------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.data / "state.json"

    def _load(self) -> None:
        if self._state_file().exists():
            st = json.loads(self._state_file().read_text())
            self.volumes, self.generation, self.next_id = st["volumes"], st["gen"], st["next"]
            self.snapshots = st.get("snapshots", {})

    def _save(self) -> None:
        tmp = self.data / ".state.json.tmp"
        with _private(tmp, "w") as f:
            f.write(json.dumps({"volumes": self.volumes, "gen": self.generation,
                                "next": self.next_id, "snapshots": self.snapshots}))
        os.replace(tmp, self._state_file())

    def path(self, name: str) -> Path:
        return self.data / f"{self.volumes[name]['globalId']}.img"

    def snap_path(self, name: str) -> Path:
        return self.data / f"{self.snapshots[name]['globalId']}.img"

    def _new_gid(self) -> str:
        gid = f"emu.{self.next_id:x}.{int(time.time()) % 100000:x}"
        self.next_id += 1
        return gid

    # fault injection ---------------------------------------------------------------------
    def inject(self, endpoint: str, count: int, transient: bool = True) -> None:
        """The next `count` calls of `endpoint` fail (transiently or not)."""
        with self.lock:
            self.faults[endpoint] = [count, transient]

    def misreply(self, endpoint: str, shape: str, count: int = 1) -> None:
        """The next `count` calls of `endpoint` get a reply that is not the envelope (a proxy
        or a broken API: see MISREPLIES); the request itself is not applied, except "slow"
        which applies it once `release` is set, after the client gave up waiting."""
        if shape not in MISREPLIES:
            raise ValueError(f"unknown reply shape {shape}")
        with self.lock:
            self.misreplies[endpoint] = [count, shape]

    def take_misreply(self, endpoint: str) -> Optional[str]:
        with self.lock:
            pending = self.misreplies.get(endpoint)
            if not pending or pending[0] <= 0:
                return None
            pending[0] -= 1
            return pending[1]

    def fail_change(self, k: int) -> None:
        """The k-th change from now (any endpoint but a read) fails, as a crash would."""
        with self.lock:
            self.change_fault = k

    # rules ---------------------------------------------------------------------------------
    def _vol(self, name: str) -> dict:
        if name not in self.volumes:
            raise ApiFailure("objectDoesNotExist", f"Volume {name} does not exist")
        return self.volumes[name]

    @staticmethod
    def _check_name(name: Any) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name) or len(name) >= 200 \
                or name in ("list", "status"):
            raise ApiFailure("invalidParam", f"Invalid volume name {name!r}", 400)

    @staticmethod
    def _check_size(size: Any, what: str = "size") -> None:
        if not isinstance(size, int) or size <= 0 or size % 512:
            raise ApiFailure("invalidParam", f"{what} must be a positive multiple of 512", 400)

    @staticmethod
    def _check_tags(name: str, tags: dict) -> None:
        for k, v in tags.items():
            if not TAG_NAME_RE.match(str(k)) or not isinstance(v, str) or \
                    not TAG_VALUE_RE.match(v):
                raise ApiFailure("invalidParam", f"Invalid tag {k}={v}", 400)
        if len(name) + sum(len(k) + 1 + len(v) for k, v in tags.items()) > 200:
            raise ApiFailure("invalidParam", "The volume name including tags exceeds 200 bytes",
                             400)

    def _busy(self, name: str, action: str) -> None:
        clients = self.attachments.get(name)
        if clients:
            ids = ",".join(str(c) for c in sorted(clients))
            raise ApiFailure("busy", f"Cannot {action} volume {name}: it is open at client {ids}")

    def _summary(self, name: str) -> dict:
        v = self.volumes[name]
        return {"name": name, "size": v["size"], "globalId": v["globalId"],
                "templateName": v.get("templateName", ""), "parentName": "",
                "replication": 3, "tags": dict(v["tags"]), "creationTimestamp": v["created"],
                "objectsCount": v["size"] // (32 << 20) + 1, "placeAll": "", "placeTail": "",
                "placeHead": "", "bw": "-", "iops": "-", "visibleVolumeId": 0}

    # endpoints -----------------------------------------------------------------------------
    def handle(self, query: str, args: list[str], body: Any) -> Any:
        with self.lock:
            if query not in READS and self.change_fault is not None:
                self.change_fault -= 1
                if self.change_fault <= 0:
                    self.change_fault = None
                    raise ApiFailure("injectedFault", f"injected failure of {query}", 500)
            fault = self.faults.get(query)
            if fault and fault[0] > 0:
                fault[0] -= 1
                raise ApiFailure("injectedFault" if not fault[1] else "transientError",
                                 f"injected failure of {query}", 500, fault[1])
            handler = getattr(self, f"do_{query}", None)
            if handler is None:
                raise ApiFailure("invalidParam", f"unknown query {query}", 404)
            result = handler(*args, body) if body is not None or query not in READS \
                else handler(*args)
            if query not in READS:
                self.generation += 1
                self._save()
            return result

    def do_VolumesList(self) -> list:
        return [self._summary(n) for n in sorted(self.volumes)]

    def do_Volume(self, name: str) -> list:
        self._vol(name)
        return [self._summary(name)]

    def do_AttachmentsList(self) -> list:
        return [{"volume": v, "snapshot": False, "client": c, "rights": r, "pos": 0}
                for v, clients in sorted(self.attachments.items())
                for c, r in sorted(clients.items())]

    def used_bytes(self) -> int:
        """Raw bytes stored: the volume files' allocated blocks, three copies each."""
        return 3 * sum(os.stat(self.path(n)).st_blocks * 512 for n in self.volumes)

    def do_VolumeTemplatesStatus(self) -> list:
        """One template on one placement group (operator completeness: the capacity check)."""
        free = max(self.capacity - self.used_bytes(), 0)
        est = {"free": free // 3, "capacity": self.capacity // 3}
        group = {f"{k}Place{p}": v for k, v in (("available", free), ("capacity", self.capacity))
                 for p in ("All", "Tail")}
        return [{"name": "default", "placeAll": "default", "placeTail": "default",
                 "placeHead": "", "replication": 3, "volumesCount": len(self.volumes),
                 "snapshotsCount": 0, "removingSnapshotsCount": 0, **group,
                 "availablePlaceHead": 0, "capacityPlaceHead": 0,
                 "stored": {**est, "placeAll": est, "placeTail": est, "placeHead": est}}]

    def do_VolumeCreate(self, body: dict) -> dict:
        name = body.get("name")
        self._check_name(name)
        tags = body.get("tags") or {}
        self._check_tags(name, tags)
        if name in self.volumes:
            raise ApiFailure("objectExists", f"Volume {name} already exists")
        base, parent = body.get("baseOn"), body.get("parent")
        if base is not None:
            src = self._vol(base)
            size = body.get("size", src["size"])
        elif parent is not None:
            size = body.get("size", self._snap(parent)["size"])
        else:
            size = body.get("size")
        self._check_size(size)
        gid = self._new_gid()
        path = self.data / f"{gid}.img"
        try:  # the data first: a size the disk cannot hold is refused before any record
            if base is not None:
                sparse_copy(self.path(base), path)
            elif parent is not None:
                sparse_copy(self.snap_path(parent), path)
            _private(path, "ab").close()
            _resize(path, size)
        except ApiFailure:
            path.unlink(missing_ok=True)
            raise
        lineage = self.snapshots[parent]["lineage"] if parent is not None else gid
        self.volumes[name] = {"size": size, "tags": {k: v for k, v in tags.items() if v},
                              "globalId": gid, "created": int(time.time()),
                              "templateName": body.get("template", ""), "lineage": lineage}
        return {"ok": True, "generation": self.generation + 1, "name": name, "globalId": gid}

    def do_VolumeUpdate(self, name: str, body: dict) -> dict:
        vol = self._vol(name)
        new_size, new_tags, new_name = vol["size"], vol["tags"], body.get("rename")
        if "size" in body or "sizeAdd" in body:  # every check first: a refusal changes nothing
            new_size = body["size"] if "size" in body else vol["size"] + body["sizeAdd"]
            self._check_size(body.get("sizeAdd", new_size),
                             "sizeAdd" if "sizeAdd" in body else "size")
            if new_size < vol["size"]:
                if not body.get("shrinkOk"):
                    raise ApiFailure("invalidParam", "Shrinking a volume requires shrinkOk", 400)
                self._busy(name, "shrink")
        if "tags" in body:
            self._check_tags(name, body["tags"])
            new_tags = {k: v for k, v in {**vol["tags"], **body["tags"]}.items() if v}
            self._check_tags(new_name or name, new_tags)
        if new_name is not None:
            self._check_name(new_name)
            if new_name in self.volumes:
                raise ApiFailure("objectExists", f"Volume {new_name} already exists")
            self._busy(name, "rename")
        if new_size != vol["size"]:
            _resize(self.path(name), new_size)
            vol["size"] = new_size
            self.devices.resized(name)
        vol["tags"] = new_tags
        if new_name is not None:
            self.volumes[new_name] = self.volumes.pop(name)
        return {"ok": True, "generation": self.generation + 1}

    def do_VolumeDelete(self, name: str, body: Any = None) -> dict:
        self._vol(name)
        self._busy(name, "delete")
        path = self.path(name)
        del self.volumes[name]
        path.unlink(missing_ok=True)
        return {"ok": True, "generation": self.generation + 1}

    # snapshots: read-only copies of a volume with tags of their own ------------------------
    def _snap(self, name: str) -> dict:
        if name not in self.snapshots:
            raise ApiFailure("objectDoesNotExist", f"Snapshot {name} does not exist")
        return self.snapshots[name]

    def _snap_summary(self, name: str) -> dict:
        s = self.snapshots[name]
        return {"name": name, "size": s["size"], "globalId": s["globalId"], "tags": dict(s["tags"]),
                "creationTimestamp": s["created"], "parentName": "", "onVolume": "",
                "autoName": False, "bound": False, "deleted": False, "transient": False,
                "templateName": "", "replication": 3}

    def do_SnapshotsList(self) -> list:
        return [self._snap_summary(n) for n in sorted(self.snapshots)]

    def do_Snapshot(self, name: str) -> list:
        self._snap(name)
        return [self._snap_summary(name)]

    def do_VolumeSnapshot(self, volume: str, body: dict) -> dict:
        vol = self._vol(volume)
        name, tags = body.get("name"), body.get("tags") or {}
        if not isinstance(name, str) or not SNAP_NAME_RE.match(name) or len(name) >= 200:
            raise ApiFailure("invalidParam", f"Invalid snapshot name {name!r}", 400)
        self._check_tags(name, tags)
        if name in self.snapshots:
            raise ApiFailure("objectExists", f"Snapshot {name} already exists")
        gid = self._new_gid()
        self.snapshots[name] = {"size": vol["size"], "globalId": gid, "created": int(time.time()),
                                "tags": {k: v for k, v in tags.items() if v},
                                "lineage": vol.get("lineage", vol["globalId"])}
        sparse_copy(self.path(volume), self.snap_path(name))
        return {"ok": True, "generation": self.generation + 1, "snapshotGlobalId": gid}

    def do_SnapshotUpdate(self, name: str, body: dict) -> dict:
        snap = self._snap(name)
        if "tags" in body:
            self._check_tags(name, body["tags"])
            tags = {k: v for k, v in {**snap["tags"], **body["tags"]}.items() if v}
            self._check_tags(name, tags)
            snap["tags"] = tags
        return {"ok": True, "generation": self.generation + 1}

    def do_SnapshotDelete(self, name: str, body: Any = None) -> dict:
        path = self.snap_path(name) if name in self.snapshots else None
        self._snap(name)
        del self.snapshots[name]
        path.unlink(missing_ok=True)
        return {"ok": True, "generation": self.generation + 1}

    def do_VolumeRevert(self, name: str, body: dict) -> dict:
        vol, to = self._vol(name), body.get("toSnapshot")
        snap = self._snap(to)
        if snap["lineage"] != vol.get("lineage", vol["globalId"]):
            raise ApiFailure("invalidParam", f"Snapshot {to} is not a snapshot of volume {name}",
                             400)
        self._busy(name, "revert")
        sparse_copy(self.snap_path(to), self.path(name))
        vol["size"] = snap["size"]
        return {"ok": True, "generation": self.generation + 1}

    def _reassign(self, items: list) -> None:
        for item in items:
            name = item.get("volume")
            self._vol(name)
            current = self.attachments.setdefault(name, {})
            detach = item.get("detach", [])
            for client in (list(current) if detach == "all" else detach):
                current.pop(int(client), None)
            for rights in ("rw", "ro"):
                for client in item.get(rights, []):
                    client = int(client)
                    others = [c for c, r in current.items() if c != client and r == "rw"]
                    if others and not item.get("force"):
                        raise ApiFailure("busy", f"Volume {name} is open at client "
                                                 f"{others[0]}")
                    current[client] = rights
            if current:
                self.devices.attach(name, self.path(name))
            else:
                del self.attachments[name]
                self.devices.detach(name)

    def do_VolumesReassign(self, body: list) -> dict:
        self._reassign(body)
        return {"ok": True, "generation": self.generation + 1}

    def do_VolumesReassignWait(self, body: dict) -> dict:
        self._reassign(body.get("reassign", []))
        return {"ok": True, "generation": self.generation + 1}

    def shutdown_devices(self) -> None:
        for name in list(self.attachments):
            self.devices.detach(name)


def _invalid(descr: str) -> ApiFailure:
    return ApiFailure("invalidParam", descr, 400)


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
            raise _invalid(f"bad Content-Length {raw_length[:40]!r}")
        length = int(raw_length)
        raw = self.rfile.read(length) if length else b""
        if len(raw) != length:
            raise _invalid(f"body shorter than its Content-Length {length}")
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise _invalid(f"malformed JSON body: {e}") from None

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
            return self._reply(e.status, {"error": {"name": e.name, "descr": e.descr,
                                                    "transient": e.transient}})
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            return self._reply(400, {"error": {"name": "invalidParam", "transient": False,
                                               "descr": f"malformed request: {e}"}})
        try:
            self._reply(200, {"generation": emu.generation, "data": data})
        except OSError:
            pass  # the client gave up waiting; the change stands, as on the real API

    def _serve(self, method: str) -> None:
        emu = self.emulator
        url = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if parts[:2] != ["ctrl", "1.0"] or len(parts) < 3:
            return self._reply(404, {"error": {"name": "invalidParam", "descr": "bad path",
                                               "transient": False}})
        parts = parts[2:]
        if parts[0] == "MultiCluster":
            parts = parts[1:]
        query, args = parts[0], parts[1:]
        with emu.lock:
            emu.calls[query] += 1
        if self.headers.get("Authorization") != f"Storpool v1:{emu.token}":
            return self._reply(401, {"error": {"name": "authError", "transient": False,
                                               "descr": "Authorization failed"}})
        try:
            body = self._body() if method == "POST" else None
        except ApiFailure as e:
            self.close_connection = True
            return self._reply(e.status, {"error": {"name": e.name, "descr": e.descr,
                                                    "transient": e.transient}})
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


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"xen2kvm-storpool-emulator: error: cannot read the token file "
                             f"{args.token_file}: {exc.strerror}") from None
    if args.token:
        print("xen2kvm-storpool-emulator: warning: --token is deprecated (any user sees it in "
              "`ps`); use --token-file or SP_AUTH_TOKEN", file=sys.stderr)
        return args.token
    token = os.environ.get("SP_AUTH_TOKEN", "")
    if not token:
        raise SystemExit("xen2kvm-storpool-emulator: error: no token: give --token-file FILE "
                         "or set SP_AUTH_TOKEN")
    return token


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="xen2kvm-storpool-emulator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:8181", help="address:port (loopback)")
    p.add_argument("--data", required=True, help="folder for volume files and state")
    p.add_argument("--token-file", help="file holding the API token (default: $SP_AUTH_TOKEN)")
    p.add_argument("--token", help=argparse.SUPPRESS)  # deprecated: visible in `ps`
    p.add_argument("--dev-root", default="/dev", help="devices appear in DEV_ROOT/storpool/")
    p.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY,
                   help="raw bytes of the placement group (VolumeTemplatesStatus)")
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    os.umask(0o077)  # volume images and state: the owner's only
    emu = Emulator(Path(args.data), _token(args), Path(args.dev_root), capacity=args.capacity)
    server = serve(emu, host or "127.0.0.1", int(port))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a kill must not leave loop devices behind
        signal.signal(sig, lambda *_: stop.set())
    print(f"StorPool API emulator on {host}:{server.server_address[1]}, data in {args.data}",
          flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown()
        emu.shutdown_devices()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
