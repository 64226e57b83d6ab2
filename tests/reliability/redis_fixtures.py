"""A real redis-server (Debian's) per test, and this process queueing through it."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django_q.conf import Conf

from devkit.devservers import RedisServer


def find_redis_server() -> str | None:
    """Debian's redis-server; installed with apt-get when missing and we are root."""
    found = shutil.which("redis-server")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    log = Path(settings.BASE_DIR) / ".run" / "apt-redis.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        subprocess.run(
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server",
            shell=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    return shutil.which("redis-server")


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    binary = find_redis_server()
    if not binary:
        pytest.skip(
            "redis-server not found and could not be installed "
            "(apt-get install redis-server, then rerun)"
        )
    server = RedisServer(binary, tmp_path)
    yield server
    server.stop()


@pytest.fixture
def redis_broker_here(monkeypatch, redis_server) -> RedisServer:
    """This process queues through Redis, as config.settings does with Q_BROKER=redis.

    Ask for it before `qcluster`: fixtures end in reverse order, so the clusters then stop
    while Redis still answers (after it, each waits out its shutdown timeout).
    """
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)
    monkeypatch.setattr(Conf, "REDIS", redis_server.url)
    return redis_server


def redis_cluster_env(server: RedisServer, **extra: str) -> dict[str, str]:
    """Environment of a qcluster that uses `server` as its queue."""
    return {"Q_BROKER": "redis", "REDIS_URL": server.url, **extra}
