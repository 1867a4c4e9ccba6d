"""A private Redis Cluster on free loopback ports (blocking: for tests and benchmarks):
`redis-server --cluster-enabled yes` nodes joined by `redis-cli --cluster create`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flashsale.runtime.redis_server import RedisServer, free_port


@dataclass
class LocalCluster:
    """A private Redis Cluster's nodes, which a test may kill one by one."""

    nodes: list[RedisServer]
    cli: str = "redis-cli"
    primaries: int = 3

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node_at(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def promoted_instead_of(self, dead: RedisServer) -> bool:
        """Whether the live nodes have marked `dead` failed and promoted a replica in its
        place (as many live primaries as there were primaries at the start)."""
        live = next(node for node in self.nodes if node is not dead)
        lines = _cli(self.cli, live.port, "cluster", "nodes").splitlines()
        flags = {line.split()[1].split("@")[0]: line.split()[2] for line in lines if line}
        primaries = [f for f in flags.values() if "master" in f and "fail" not in f]
        dead_flags = flags.get(f"127.0.0.1:{dead.port}", "")
        return "fail" in dead_flags and len(primaries) == self.primaries

    def wait_promoted_instead_of(self, dead: RedisServer, within: float = 30) -> None:
        _poll(lambda: self.promoted_instead_of(dead), within=within, interval=0.05,
              what="the dead primary's replica to be promoted")  # fmt: skip

    def settled(self) -> bool:
        """Every live node reports the cluster ok and every replica has synced."""
        live = [n for n in self.nodes if n.process is not None and n.process.poll() is None]
        return (
            all(
                "cluster_state:ok" in _cli(self.cli, n.port, "cluster", "info")
                and _replication_settled(self.cli, n.port)
                for n in live
            )
            and _replicas(self.cli, live[0].port) == len(self.nodes) - self.primaries
        )

    def wait_settled(self, within: float = 30) -> None:
        _poll(self.settled, within=within, what="the cluster to settle, its replicas in sync")


@contextmanager
def local_redis_cluster(
    directory: Path,
    primaries: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 2000,
    *,
    binary: str = "redis-server",
    cli: str = "redis-cli",
) -> Iterator[LocalCluster]:
    """Yields the cluster once every node reports it ok and every replica has synced; stops
    every node afterwards. A primary silent for `node_timeout_ms` is failed over."""
    nodes = [
        RedisServer(
            directory / f"node-{i}",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            # The bus port's default (port + 10000) may be past 65535 or taken: pick one.
            "--cluster-port", str(free_port()),
            binary=binary,
        )
        for i in range(primaries * (1 + replicas))
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cluster = LocalCluster(nodes, cli, primaries)
        cluster.wait_settled()
        yield cluster
    finally:
        for node in nodes:
            node.stop()


def _cli(cli: str, port: int, *command: str) -> str:
    return subprocess.run(
        [cli, "-p", str(port), *command], capture_output=True, text=True, check=False
    ).stdout


def _replicas(cli: str, port: int) -> int:
    lines = _cli(cli, port, "cluster", "nodes").splitlines()
    return sum("slave" in line.split()[2] for line in lines if line.strip())


def _replication_settled(cli: str, port: int) -> bool:
    """A replica's link to its primary is up (its first sync done); a primary is settled."""
    info = _cli(cli, port, "info", "replication")
    return "role:master" in info or "master_link_status:up" in info


def _poll(check: Callable[[], bool], *, within: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within}s waiting for {what}")
        time.sleep(interval)
