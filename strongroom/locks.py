"""One writer per repository: non-blocking locks on local files or on Redis leases.

``FileLocks`` (single machine): ``fcntl.flock`` on a per-key file; the kernel releases it when
the holder dies, so a crash never leaves a stale lock. ``RedisLocks`` (several machines): a key
holding a random token, set with ``SET NX PX`` (a lease); only the token's owner can release or
extend it (compare-and-delete in Lua), and a holder that dies loses the lock when the lease ends.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Protocol, Self

from .errors import InvalidInput, LockBusy, TransientError

log = logging.getLogger(__name__)


class Lock(Protocol):
    """A held lock. Use as a context manager, or call ``release()``."""

    key: str

    def release(self) -> None:
        """Give the lock up (idempotent, never raises; never frees a lock someone else now holds)."""

    def extend(self) -> None:
        """Renew the lease; raise LockBusy if the lock was lost to expiry."""

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class RepoLocks(Protocol):
    """A family of locks keyed by string (e.g. a repository UUID)."""

    def acquire(self, key: str) -> Lock | None:
        """The lock for ``key`` if it is free right now, else None (never waits)."""


class _LockBase:
    key: str

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:  # pragma: no cover - overridden
        """Give the lock up."""
        raise NotImplementedError


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key or len(key) > 512:
        raise InvalidInput("lock key must be a non-empty string")
    return key


class FileLock(_LockBase):
    """A held ``flock`` on one lock file."""

    def __init__(self, key: str, fd: int) -> None:
        self.key = key
        self._fd: int | None = fd

    def __repr__(self) -> str:
        return f"FileLock({self.key!r}, held={self._fd is not None})"

    def release(self) -> None:
        """Unlock and close (closing alone would also release)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def extend(self) -> None:
        """File locks have no lease; raise LockBusy only if this lock was already released."""
        if self._fd is None:
            raise LockBusy(f"lock {self.key!r} is no longer held")


class FileLocks:
    """Locks as ``flock``-ed files in ``lock_dir`` (one machine; released when a holder dies)."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = Path(lock_dir)

    def path_for(self, key: str) -> Path:
        """The lock file for ``key``: readable prefix plus a hash, so any key is a safe file name."""
        readable = re.sub(r"[^A-Za-z0-9_-]+", "_", _check_key(key))[:60]
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return self.lock_dir / f"{readable}-{digest}.lock"

    def acquire(self, key: str) -> FileLock | None:
        """Take the lock without waiting; None if another holder (any process) has it."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        # The file is never deleted: unlinking a lock file races with a process that opened it.
        fd = os.open(self.path_for(key), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return FileLock(key, fd)


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_EXTEND = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
           "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")


class RedisLock(_LockBase):
    """A held Redis lease: the key stores our random token."""

    def __init__(self, owner: RedisLocks, key: str, token: str) -> None:
        self.key = key
        self._name = owner.prefix + key
        self._owner = owner
        self._token = token
        self._released = False

    def __repr__(self) -> str:  # the token stays out of reprs and logs
        return f"RedisLock({self.key!r}, released={self._released})"

    def release(self) -> None:
        """Delete the key only if it still holds our token (a stale holder cannot free another's lock)."""
        if not self._released:
            self._released = True
            try:
                self._owner._call(self._owner._release, self._name, self._token)
            except TransientError:
                log.warning("could not release lock %r; its lease will expire", self.key)

    def extend(self) -> None:
        """Renew the lease to its full length; raise LockBusy if the lease already expired."""
        if self._released or not self._owner._call(self._owner._extend, self._name, self._token,
                                                    self._owner.lease_ms):
            raise LockBusy(f"lock {self.key!r} was lost (lease expired)")


class RedisLocks:
    """Locks as Redis keys with a lease (several machines; expire ``lease_seconds`` after a holder dies)."""

    def __init__(self, redis_url: str, lease_seconds: float, prefix: str = "strongroom:lock:") -> None:
        import redis  # imported here: the embedded (file lock) path does not need the package

        if lease_seconds <= 0:
            raise InvalidInput("lease_seconds must be positive")
        self.prefix = prefix
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self._redis = redis.Redis.from_url(redis_url)
        self._errors = (redis.RedisError,)
        self._release = self._redis.register_script(_RELEASE)
        self._extend = self._redis.register_script(_EXTEND)

    def acquire(self, key: str) -> RedisLock | None:
        """Take the lease without waiting; None if someone holds it."""
        token = secrets.token_hex(16)
        try:
            taken = self._redis.set(self.prefix + _check_key(key), token, nx=True, px=self.lease_ms)
        except self._errors as exc:
            raise TransientError(f"lock service unavailable: {type(exc).__name__}") from exc
        return RedisLock(self, key, token) if taken else None

    def _call(self, script, key: str, *args: object) -> int:
        try:
            return int(script(keys=[key], args=list(args)))
        except self._errors as exc:
            raise TransientError(f"lock service unavailable: {type(exc).__name__}") from exc


def make_locks(data_dir: Path, redis_url: str | None, lease_seconds: int,
               prefix: str = "strongroom:lock:") -> RepoLocks:
    """Redis leases when a Redis URL is configured, else file locks under ``<data_dir>/locks``."""
    if redis_url:
        return RedisLocks(redis_url, lease_seconds, prefix=prefix)
    return FileLocks(Path(data_dir) / "locks")
