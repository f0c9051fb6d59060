"""`xen2kvm-storpool-emulator`: the emulator as a program, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from . import __doc__ as DESCRIPTION
from .core import DEFAULT_CAPACITY, Emulator
from .server import serve

PROG = "xen2kvm-storpool-emulator"


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise SystemExit(f"{PROG}: error: cannot read the token file "
                             f"{args.token_file}: {exc.strerror}") from None
    if args.token:
        print(f"{PROG}: warning: --token is deprecated (any user sees it in `ps`); use "
              "--token-file or SP_AUTH_TOKEN", file=sys.stderr)
        return args.token
    token = os.environ.get("SP_AUTH_TOKEN", "")
    if not token:
        raise SystemExit(f"{PROG}: error: no token: give --token-file FILE or set SP_AUTH_TOKEN")
    return token


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1:8181", help="address:port (loopback)")
    p.add_argument("--data", required=True, help="folder for volume files and state")
    p.add_argument("--token-file", help="file holding the API token (default: $SP_AUTH_TOKEN)")
    p.add_argument("--token", help=argparse.SUPPRESS)  # deprecated: visible in `ps`
    p.add_argument("--dev-root", default="/dev", help="devices appear in DEV_ROOT/storpool/")
    p.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY,
                   help="raw bytes of the placement group (VolumeTemplatesStatus)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
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
