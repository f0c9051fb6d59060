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

Modules: `rules` (the API's checks and its error), `files` (volume files and their devices),
`state` (the cluster and its persistence), `volumes` and `snapshots` (the endpoints), `core`
(the Emulator with its test hooks), `server` (HTTP), `cli` (the command), `misreplies`.
"""

from .core import DEFAULT_CAPACITY, Emulator
from .rules import ApiFailure
from .server import serve

__all__ = ["DEFAULT_CAPACITY", "ApiFailure", "Emulator", "serve"]
