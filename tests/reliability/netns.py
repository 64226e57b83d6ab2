"""Separate "hosts" on one machine: Linux network + UTS namespaces joined to this one by veths.

Each Host is a network namespace with its own loopback, one veth pair (one end inside
with 10.x.y.2/30, the other here with 10.x.y.1/30) and, for the processes it runs, its
own hostname (`unshare --uts`). Inside, 127.0.0.1 is the namespace's own loopback: the
shared PostgreSQL (scripts/pg.sh, listening on 127.0.0.1 only, used by other sessions, so
not restarted with more listen addresses) is not there. A Forwarder bound to the host
side of each veth relays TCP to it, so a process in the namespace reaches PostgreSQL
only over the veth, as a remote server at 10.x.y.1.

The Forwarder also stands in for the server's own TCP keepalive (tcp_keepalives_idle,
tcp_keepalives_interval, tcp_keepalives_count, tcp_user_timeout; docs/operations.md
"Scale-out"): its client sockets carry the same options, scaled down to seconds, and when
one dies it closes the matching server session. That is what makes PostgreSQL end a
partitioned host's sessions, roll back their transactions and release their locks.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2; `require_namespaces()` skips
otherwise.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobs.queue.clusters import kill_cluster, stop_clusters

IP = shutil.which("ip") or "/usr/sbin/ip"
PREFIX = "jqh"  # namespaces and veths of this helper: jqh<pid><letter>

# Client-side dead-peer detection, seconds (production values in docs/operations.md).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT, USER_TIMEOUT_MS = 1, 1, 3, 4000


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], check=check, capture_output=True, text=True, timeout=30)


def require_namespaces() -> None:
    """Skip (with the reason) when this machine cannot create network namespaces."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    if not os.path.exists(IP) or not shutil.which("unshare"):
        pytest.skip("iproute2 `ip` and util-linux `unshare` are needed for namespaces")
    probe = f"{PREFIX}{os.getpid()}p"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    ip("netns", "del", probe, check=False)


def remove_leftovers() -> None:
    """Namespaces and veths of earlier runs whose process is gone (a killed pytest)."""
    names = ip("netns", "list", check=False).stdout.split()
    links = ip("-o", "link", "show", check=False).stdout
    veths = {part.split(":")[1].strip().split("@")[0] for part in links.splitlines()}
    for name in set(names) | veths:
        if not name.startswith(PREFIX):
            continue
        digits = "".join(ch for ch in name[len(PREFIX) :] if ch.isdigit())
        if digits and not Path(f"/proc/{digits}").exists():
            ip("netns", "del", name, check=False)
            ip("link", "del", name, check=False)


class Forwarder:
    """Relays TCP from (listen_host, port) to (target_host, port), in its own event loop."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: set[asyncio.Task] = set()
        self.sessions = 0  # open client connections (= server sessions) right now
        self.total = 0  # client connections accepted so far
        self.server: asyncio.AbstractServer | None = None

    def start(self) -> "Forwarder":
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, *self.listen), self.loop
        ).result(timeout=10)
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())
        client = writer.get_extra_info("socket")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
        up_writer = None
        pipes: list[asyncio.Task] = []
        self.sessions += 1
        self.total += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            pipes = [
                asyncio.create_task(self._pipe(reader, up_writer)),
                asyncio.create_task(self._pipe(up_reader, writer)),
            ]
            # Either side gone (EOF, reset, keepalive timeout): end both.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.sessions -= 1
            for task in pipes:
                task.cancel()
            for w in (writer, up_writer):
                if w is not None:
                    w.transport.abort()
            self.tasks.discard(asyncio.current_task())

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except OSError:
            pass

    def stop(self) -> None:
        async def shutdown() -> None:
            if self.server is not None:
                self.server.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.sleep(0)

        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Host:
    """One "host": a network namespace, its veth, its hostname, the processes it runs."""

    hostname: str
    netns: str
    veth: str  # our end; the other end (veth + "p") lives in the namespace
    gateway: str  # our end's address: where the host reaches PostgreSQL
    address: str  # the host's own address
    forwarder: Forwarder | None = None
    cut: bool = False  # link_down() was called
    procs: list[subprocess.Popen] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the namespace, with its own hostname (a new UTS namespace)."""
        return [
            IP,
            "netns",
            "exec",
            self.netns,
            "unshare",
            "--uts",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.hostname,
            *argv,
        ]

    def run(self, argv: Sequence[str]) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=60)

    def start_qcluster(
        self, cluster: str, *, env: dict[str, str], log_dir: Path
    ) -> subprocess.Popen:
        """`manage.py qcluster` in this host, as jobs.queue.clusters starts it."""
        from django.conf import settings

        manage = Path(settings.BASE_DIR) / "manage.py"
        proc_env = {"Q_LOG_LEVEL": "INFO", **os.environ, **env, "Q_CLUSTER_NAME": cluster}
        log = open(log_dir / f"qcluster-{self.hostname}-{cluster}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            self.command([sys.executable, str(manage), "qcluster"]),
            env=proc_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # ip/unshare/sh exec in place: the group is the cluster's
        )
        self.procs.append(proc)
        return proc

    def link_down(self) -> None:
        """Pull the cable: our end of the veth down (the host's end loses carrier)."""
        ip("link", "set", self.veth, "down")
        self.cut = True

    def crash(self) -> None:
        """kill -9 every process of this host (clusters and their workers)."""
        for proc in self.procs:
            kill_cluster(proc)


def create_hosts(hostnames: Sequence[str], *, forward_port: int) -> list[Host]:
    """One namespace per hostname, each with a veth to here and a Forwarder for `forward_port`
    (to 127.0.0.1 on the same port). Undone by `destroy_hosts`, also when this fails halfway."""
    remove_leftovers()
    pid = os.getpid()
    subnet = 16 + pid % 200  # 10.213.<subnet>.<4k>/30, one /30 per host
    hosts: list[Host] = []
    try:
        for k, hostname in enumerate(hostnames):
            name = f"{PREFIX}{pid}{chr(ord('a') + k)}"
            host = Host(
                hostname=hostname,
                netns=name,
                veth=name,
                gateway=f"10.213.{subnet}.{4 * k + 1}",
                address=f"10.213.{subnet}.{4 * k + 2}",
            )
            hosts.append(host)
            peer = f"{name}p"
            ip("netns", "add", name)
            ip("link", "add", name, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", name)
            ip("addr", "add", f"{host.gateway}/30", "dev", name)
            ip("link", "set", name, "up")
            ip("-n", name, "addr", "add", f"{host.address}/30", "dev", peer)
            ip("-n", name, "link", "set", peer, "up")
            ip("-n", name, "link", "set", "lo", "up")
            host.forwarder = Forwarder(
                (host.gateway, forward_port), ("127.0.0.1", forward_port)
            ).start()
    except BaseException:
        destroy_hosts(hosts)
        raise
    return hosts


def destroy_hosts(hosts: Sequence[Host]) -> None:
    """Stop every process the hosts run, then remove namespaces, veths and forwarders."""
    for host in hosts:
        if host.cut:  # blocked on dead sockets: a graceful stop would only time out
            host.crash()
        else:
            stop_clusters(host.procs, timeout_seconds=10)  # SIGTERM, then kill -9 of the group
    for host in hosts:
        ip("netns", "del", host.netns, check=False)  # takes the namespace's veth end along
        ip("link", "del", host.veth, check=False)  # gone with its peer; in case it is not
        if host.forwarder is not None:
            host.forwarder.stop()


CONNECT_PROBE = """
import socket, sys
for target in sys.argv[1:]:
    h, p = target.rsplit(":", 1)
    try:
        socket.create_connection((h, int(p)), timeout=3).close()
        print(target, "open")
    except OSError as exc:
        print(target, type(exc).__name__)
print("hostname", socket.gethostname())
"""


def probe(host: Host, *targets: str) -> dict[str, str]:
    """From inside the host: which host:port targets accept a TCP connection, and its hostname."""
    out = host.run([sys.executable, "-c", CONNECT_PROBE, *targets])
    if out.returncode != 0:
        raise RuntimeError(f"probe in {host.netns} failed: {out.stderr}")
    return dict(line.split(" ", 1) for line in out.stdout.splitlines())
