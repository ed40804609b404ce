"""One writer per repository: file locks across processes, Redis leases across machines."""
from __future__ import annotations

import multiprocessing
import os
import secrets
import signal
import time
from pathlib import Path

import pytest

from strongroom.errors import LockBusy
from strongroom.locks import FileLocks, RedisLocks, make_locks

REDIS_URL = "redis://127.0.0.1:6379/15"


def _hold(lock_dir: str, key: str, held) -> None:
    lock = FileLocks(Path(lock_dir)).acquire(key)
    held.value = 1 if lock is not None else -1
    time.sleep(60)  # until the test SIGKILLs us (no Event: a killed waiter deadlocks Event.set)


def _try(lock_dir: str, key: str, result) -> None:
    lock = FileLocks(Path(lock_dir)).acquire(key)
    result.value = 1 if lock is not None else 0


def test_file_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path):
    locks = FileLocks(tmp_path / "locks")
    first = locks.acquire("repo:{abc}")
    assert first is not None
    assert locks.acquire("repo:{abc}") is None
    other = locks.acquire("repo:{def}")
    assert other is not None
    first.release()
    first.release()  # idempotent
    with locks.acquire("repo:{abc}") as again:
        assert again is not None
        again.extend()
        assert locks.acquire("repo:{abc}") is None
    assert locks.acquire("repo:{abc}") is not None
    with pytest.raises(LockBusy):
        again.extend()
    other.release()


def test_file_lock_excludes_another_process_and_is_freed_when_it_dies(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    held = ctx.Value("i", 0, lock=False)
    holder = ctx.Process(target=_hold, args=(str(tmp_path), "repo:1", held))
    holder.start()
    try:
        deadline = time.monotonic() + 20
        while held.value == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held.value == 1
        assert FileLocks(tmp_path).acquire("repo:1") is None
        result = ctx.Value("i", -1, lock=False)
        contender = ctx.Process(target=_try, args=(str(tmp_path), "repo:1", result))
        contender.start()
        contender.join(20)
        assert result.value == 0  # another process cannot take it either
        os.kill(holder.pid, signal.SIGKILL)  # crash without releasing
        holder.join(10)
    finally:
        holder.kill()
        holder.join(10)
    lock = FileLocks(tmp_path).acquire("repo:1")
    assert lock is not None
    lock.release()


def test_lock_file_names_are_safe_for_any_key(tmp_path: Path):
    locks = FileLocks(tmp_path / "locks")
    path = locks.path_for("../../etc/passwd")
    assert path.parent == tmp_path / "locks" and ".." not in path.name
    assert locks.path_for("a/b") != locks.path_for("a_b")


def test_make_locks_picks_files_without_redis(tmp_path: Path):
    files = make_locks(tmp_path, None, 60)
    assert isinstance(files, FileLocks) and files.lock_dir == tmp_path / "locks"
    redis_locks = make_locks(tmp_path, REDIS_URL, 60, prefix="t1:strongroom:lock:")
    assert isinstance(redis_locks, RedisLocks) and redis_locks.prefix == "t1:strongroom:lock:"
    assert redis_locks.lease_ms == 60_000


@pytest.fixture
def redis_prefix():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"strongroom:test:{secrets.token_hex(4)}:"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_redis_lock_excludes_and_releases(redis_prefix: str):
    locks = RedisLocks(REDIS_URL, lease_seconds=30, prefix=redis_prefix)
    with locks.acquire("repo:1") as lock:
        assert lock is not None and lock.key == "repo:1"
        assert locks.acquire("repo:1") is None
        assert RedisLocks(REDIS_URL, 30, prefix=redis_prefix).acquire("repo:1") is None
        assert locks.acquire("repo:2") is not None
    assert locks.acquire("repo:1") is not None


def test_redis_lease_expiry_lets_another_acquire(redis_prefix: str):
    locks = RedisLocks(REDIS_URL, lease_seconds=0.3, prefix=redis_prefix)
    stale = locks.acquire("repo:1")
    assert stale is not None
    time.sleep(0.45)
    fresh = locks.acquire("repo:1")
    assert fresh is not None


def test_a_stale_holder_can_neither_release_nor_extend_someone_elses_lock(redis_prefix: str):
    locks = RedisLocks(REDIS_URL, lease_seconds=0.3, prefix=redis_prefix)
    stale = locks.acquire("repo:1")
    time.sleep(0.45)
    fresh = RedisLocks(REDIS_URL, lease_seconds=30, prefix=redis_prefix).acquire("repo:1")
    assert fresh is not None
    stale.release()
    with pytest.raises(LockBusy):
        stale.extend()
    assert locks.acquire("repo:1") is None  # the fresh holder still has it
    fresh.release()
    assert locks.acquire("repo:1") is not None


def test_extend_renews_the_lease(redis_prefix: str):
    locks = RedisLocks(REDIS_URL, lease_seconds=0.4, prefix=redis_prefix)
    lock = locks.acquire("repo:1")
    for _ in range(3):
        time.sleep(0.25)
        lock.extend()
    assert locks.acquire("repo:1") is None  # 0.75 s later, still held thanks to extend()
    assert lock._token not in repr(lock)
    lock.release()
