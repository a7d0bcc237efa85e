"""One writer per project: an exclusive lock on a directory, held for a whole run.

The lock is the file `.keras-structopt.lock` in the directory, locked with `flock` (the
operating system releases it when the process dies, however it dies) and holding the
owner's PID, host and start time, which a refused second writer is told. The file exists
while the lock is held: released, it is removed (a killed holder's file stays, unlocked, and
the next writer takes it over). Where `flock`
is missing (Windows), the file is created exclusively and a lock whose process is gone
(same host, by PID liveness) is taken over.

Distributed workers never take the lock: they join through the chief, which holds it
(under `keras-structopt run --workers`, the launcher holds it for every process).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ".keras-structopt.lock"
HELD_ENV = "KERAS_STRUCTOPT_LOCK_HELD"  # set by a launcher for the processes it starts under its lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


def _describe(owner: dict) -> str:
    started = owner.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"PID {owner.get('pid', '?')} on {owner.get('host', '?')}, started {when}"


def _read(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return owner if isinstance(owner, dict) else {}


class ProjectLock:
    """An exclusive lock on `directory` for one writer (a search, a compression, an export).

    Used as a context manager, or with `acquire()` / `release()`. A second process that asks
    for the lock while the first holds it gets a `ConfigurationError` at once, naming the
    holder's PID and start time. A lock left by a killed process is taken over. Within one
    process the lock is re-entrant (the command's run and the tuner it drives share it).

    Example:
        >>> directory = getfixture("tmp_path")
        >>> with ProjectLock(directory, "run"):
        ...     (directory / LOCK_FILE).exists()
        True
    """

    _held: dict[str, int] = {}  # this process's locks: resolved path -> depth

    def __init__(self, directory, what: str = "search"):
        self.directory = Path(os.fspath(directory))
        self.path = self.directory / LOCK_FILE
        self.what = what
        self._descriptor: int | None = None

    def acquire(self) -> ProjectLock:
        key = str(self.path.resolve())
        if self._held.get(key):
            self._held[key] += 1
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "what": self.what}
        try:
            import fcntl
        except ImportError:  # no flock: an exclusive create, a dead owner's lock taken over
            self._descriptor = self._create_exclusive(owner)
        else:
            while True:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(descriptor)
                    self._refuse(_read(self.path))
                try:  # the file a releasing holder removed is not the lock any more: open the new one
                    same = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(descriptor)
            os.ftruncate(descriptor, 0)
            os.write(descriptor, (json.dumps(owner) + "\n").encode())
            os.fsync(descriptor)
            self._descriptor = descriptor
        self._held[key] = 1
        return self

    def _create_exclusive(self, owner: dict) -> int:
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                same_host = holder.get("host") == socket.gethostname()
                if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                    self.path.unlink(missing_ok=True)  # left by a killed process: taken over
                    continue
                self._refuse(holder)
            os.write(descriptor, (json.dumps(owner) + "\n").encode())
            os.fsync(descriptor)
            return descriptor
        self._refuse(_read(self.path))
        raise AssertionError("unreachable")

    def _refuse(self, holder: dict) -> None:
        from keras_structopt import _checks

        raise _checks.error(
            f"Expected one writer at a time in {str(self.directory)!r}. Received: a {self.what} while another "
            f"process holds it ({_describe(holder)}). Wait for it to finish, or use another directory."
        )

    def release(self) -> None:
        key = str(self.path.resolve())
        depth = self._held.get(key, 0)
        if depth > 1:
            self._held[key] = depth - 1
            return
        self._held.pop(key, None)
        if self._descriptor is None:
            return
        try:
            import fcntl
        except ImportError:
            os.close(self._descriptor)
            self.path.unlink(missing_ok=True)
        else:  # removed while still held, then unlocked: a run leaves no lock file behind
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)
            os.close(self._descriptor)
        self._descriptor = None

    def __enter__(self) -> ProjectLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(directory) -> dict | None:
    """Who holds `directory`'s lock (PID, host, start time), or None when no live process does.

    Example:
        >>> holder(getfixture("tmp_path")) is None
        True
    """
    path = Path(os.fspath(directory)) / LOCK_FILE
    if not path.exists():
        return None
    if str(path.resolve()) in ProjectLock._held:
        return _read(path)
    try:
        import fcntl
    except ImportError:
        owner = _read(path)
        pid = owner.get("pid")
        return owner if isinstance(pid, int) and _alive(pid) else None
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return _read(path)
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def check_free(directory, what: str = "search") -> None:
    """Raises a `ConfigurationError` naming the holder when another live process holds `directory`'s lock.

    Example:
        >>> check_free(getfixture("tmp_path"), "run")  # nobody holds it
    """
    owner = holder(directory)
    if owner is not None and owner.get("pid") != os.getpid():
        ProjectLock(directory, what)._refuse(owner)


def held_by_launcher() -> bool:
    """Whether a launcher holds this process's project lock for it (`run --workers`)."""
    return bool(os.environ.get(HELD_ENV))
