"""Hosts for a test: Linux network namespaces on one switch, made and removed by the test.

Each host is a namespace with its loopback and one interface, ``eth0``, whose other end is
plugged into a bridge in a namespace of its own (the switch), so nothing is added to the
machine's own network but the namespaces' names. Cutting a host's link sets the switch's end
down: to the host, the cable was pulled (no carrier), to everyone else it went silent.

Needs root and ``ip`` (iproute2). Off CI a test without them skips, saying why; under
``CI=true`` it fails, like a missing service (tests/support/services.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import unavailable

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
NETNS_DIR = Path("/run/netns")
MAX_HOSTS = 12  # a bound on what one test may make


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the calling thread in ``namespace`` meanwhile: sockets made inside stay there (a
    listening socket keeps serving from it after the block), and children started inside
    start there. Only this thread moves; the others stay where they are."""
    with open("/proc/thread-self/ns/net", "rb") as own, open(NETNS_DIR / namespace, "rb") as target:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(own.fileno())


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def require_namespaces() -> None:
    """Skip (or fail under CI) unless this process may make network namespaces."""
    if os.geteuid() != 0:
        unavailable("network namespaces need root (CI runs as root)")
    if shutil.which("ip") is None:
        unavailable("no ip command (iproute2)")
    probe = f"hp-probe-{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30, check=False)
    if made.returncode != 0:
        unavailable(f"ip netns add fails here: {made.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30, check=False)


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str  # on the switch's network

    def argv(self, *command: str) -> list[str]:
        """``command`` run on this host, under the host's own name: in a UTS namespace of its
        own whose hostname is the host's (Celery names a worker after its host: two workers of
        one name would be one node to the broker and to each other). Each step execs the next:
        the pid is the command's."""
        named = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *command]
        return ["ip", "netns", "exec", self.namespace, *named]

    def entered(self) -> contextlib.AbstractContextManager[None]:
        return entered(self.namespace)


@dataclass
class Network:
    """A /24 of hosts on one switch; ``close`` removes every namespace it made."""

    prefix: str  # the first three octets, e.g. "10.201.0"
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    hosts: dict[str, Host] = field(default_factory=dict)
    _made: list[str] = field(default_factory=list)

    switch: str = ""

    def start(self) -> None:
        self.switch = self._namespace("switch")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _namespace(self, name: str) -> str:
        assert len(self._made) < MAX_HOSTS + 1, "too many namespaces for one test"
        namespace = f"hookpost-{self.tag}-{name}"
        _ip("netns", "add", namespace)
        self._made.append(namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def add(self, name: str, last_octet: int) -> Host:
        host = Host(name, self._namespace(name), f"{self.prefix}.{last_octet}")
        port = f"p-{name}"[:15]
        _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[name] = host
        return host

    def cut(self, host: Host) -> None:
        """Pull the host's cable: its port on the switch goes down."""
        _ip("-n", self.switch, "link", "set", f"p-{host.name}"[:15], "down")

    def restore(self, host: Host) -> None:
        _ip("-n", self.switch, "link", "set", f"p-{host.name}"[:15], "up")

    def close(self) -> None:
        """Remove the namespaces (their interfaces go with them). A namespace a process
        still runs in lives on unnamed until it exits: stop the hosts' processes first."""
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30, check=False)
        self._made.clear()


@contextmanager
def network(prefix: str) -> Iterator[Network]:
    require_namespaces()
    made = Network(prefix)
    try:
        made.start()
        yield made
    finally:
        made.close()
