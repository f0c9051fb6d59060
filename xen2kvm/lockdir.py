"""The run lock's folder and file, safe under a world-writable parent such as /run/lock.

Another user can plant a symlink or a folder of their own where the lock folder should be: root
would then create files wherever the link points, or wait forever on a lock someone else holds.
So the folder is created 0700, must be a real directory owned by the caller and not writable by
group or others, and is opened (and the lock file in it) without following symlinks. The lock
file records the holder's pid, so a refusal can name who holds it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Callable

from .errors import LockBusy, PlanError

LOCK_FILE = "xen2kvm.lock"


def _refuse(path: str, why: str, fix: str) -> PlanError:
    return PlanError(f"lock folder {path} {why}; {fix}")


def _check(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symlink", "remove it; the tool creates the folder itself "
                      "(or set XEN2KVM_LOCK_DIR)")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "is not a directory", "remove it or point XEN2KVM_LOCK_DIR at a "
                      "folder of your own")
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})",
                      "remove it so that the tool can create its own (or set XEN2KVM_LOCK_DIR)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"is writable by others (mode {stat.S_IMODE(st.st_mode):o})",
                      f"chmod go-w {path} (or set XEN2KVM_LOCK_DIR)")


def open_folder(path: str) -> int:
    """A descriptor of the checked lock folder, created 0700 when missing."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        _check(path, os.lstat(path))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except PlanError:
        raise
    except OSError as exc:
        raise _refuse(path, f"cannot be used ({exc.strerror or exc})",
                      "point XEN2KVM_LOCK_DIR at a writable folder of your own") from None
    _check(path, os.fstat(fd))  # the folder opened is the folder checked
    return fd


def acquire(path: str) -> Callable[[], None]:
    """Take the run lock in `path`; the returned callable releases it."""
    dir_fd = open_folder(path)
    where = os.path.join(path, LOCK_FILE)
    try:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PlanError(f"lock file {where} is a symlink; remove it and rerun the same "
                            "command") from None
        raise PlanError(f"lock file {where} cannot be opened ({exc.strerror}); point "
                        "XEN2KVM_LOCK_DIR at a writable folder of your own") from None
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise LockBusy(f"another xen2kvm run holds {where}{who}; wait for it to finish and "
                       "rerun the same command") from None
    holder = f"{os.getpid()}\n".encode()
    os.pwrite(fd, holder, 0)
    if os.fstat(fd).st_size > len(holder):  # cut a longer pid's end only: a truncate to
        os.ftruncate(fd, len(holder))       # nothing first costs a metadata write every run
    return lambda: os.close(fd)
