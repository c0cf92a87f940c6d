"""The data dir as the operator hands it over: checked before anything opens it, and held by one server.

Two servers on one data dir lose acknowledged events (the second one's spool deletes the first one's live
segment), so `serve` takes an exclusive `flock` on `phlite.lock` for its whole life and writes its pid there;
a second server is refused at once, naming that pid. Which commands take the lock: README "Scripted setup".
"""

import errno
import fcntl
import os
from pathlib import Path

from phlite.errors import StartupError

LOCK_NAME = "phlite.lock"


def prepare(data_dir) -> Path:
    """The data dir, created if missing (its parent must exist: a typo in a path is not silently a new
    empty data dir elsewhere); StartupError when it cannot be used."""
    d = Path(data_dir)
    if not d.exists():
        if not d.parent.is_dir():
            raise StartupError(f"data dir {d} does not exist, nor does its parent {d.parent}: create it first")
        try:
            d.mkdir()
        except OSError as e:
            raise StartupError(f"cannot create data dir {d}: {e.strerror}") from None
    if not d.is_dir():
        raise StartupError(f"data dir {d} is not a directory")
    _check_writable(d)
    for name in ("phlite.db", "phlite.db-wal", "phlite.db-shm"):
        f = d / name
        if f.exists() and not os.access(f, os.R_OK | os.W_OK):
            raise StartupError(f"{f} is not readable and writable by this user")
    spool = d / "spool"
    if spool.exists() and not spool.is_dir():
        raise StartupError(f"{spool} is not a directory")
    return d


def _check_writable(d):
    # A real write, not os.access alone: a read-only mount or a full inode table only shows when tried.
    probe = d / f".phlite-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        why = "read-only file system" if e.errno == errno.EROFS else e.strerror
        raise StartupError(f"data dir {d} is not writable: {why}") from None


class DataDirLock:
    """An exclusive flock on `<data_dir>/phlite.lock`, holding our pid, until release() or process exit.

    flock belongs to the open file, so the kernel drops it when the process dies (even by kill -9):
    a stale lock file never blocks a restart."""

    def __init__(self, data_dir):
        self.path = Path(data_dir) / LOCK_NAME
        self.fd = None

    def acquire(self):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StartupError(f"cannot open {self.path}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"pid {holder}" if holder else "another process"
                raise StartupError(f"data dir {self.path.parent} is in use by another phlite ({who}); "
                                   f"stop it first or use another --data-dir") from None
            raise StartupError(f"cannot lock {self.path}: {e.strerror}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self):
        if self.fd is not None:
            # Empty the pid first: a reader of the file never sees a pid that no longer holds it.
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def holder(data_dir):
    """The pid of the server holding `data_dir`, or None (for commands that must not run beside one)."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
