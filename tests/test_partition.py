"""A network partition: the quorum queue's leader (or a minority node) cut off from the rest.

Three nodes of the 4.3 lane, each in a network namespace of its own, joined by a bridge
in the root namespace (addresses in 10.231.0.0/24, which exist only there). The cut is a
pair of blackhole routes inside the namespaces; send.py and receive.py run in the root
namespace and reach every node. Run it by itself:

    bash scripts/test.sh --lane rabbitmq4.3 tests/test_partition.py -s
"""
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from helpers import Broker, cannot_run, one_line_error
from node import Node

# A lane of its own (the cut needs 4.3's Khepri), and more time than the other tests: 200
# sends, a 20 s cut, and sends that wait up to --timeout + 15 s each while it lasts.
pytestmark = [pytest.mark.lanes("rabbitmq4.3"), pytest.mark.timeout(900)]

NET = "10.231.0"
MESSAGES = 200
CUT_AT = 40        # the message before which the cut begins
CUT_SECONDS = 20
TIMEOUT = 2        # send.py --timeout; a confirm is awaited at most TIMEOUT + 15 s


def ip(*args, netns=None):
    command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(command, check=True, capture_output=True)


class Network:
    """A bridge in the root namespace and one namespace per node, torn down by close()."""

    def __init__(self, count):
        tag = str(os.getpid() % 100000)
        self.bridge = f"hpb{tag}"
        self.namespaces = [f"hello-part{i}-{tag}" for i in range(1, count + 1)]
        self.veths = [f"vh{i}x{tag}" for i in range(1, count + 1)]
        self.cuts = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{NET}.254/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for number, (netns, veth) in enumerate(zip(self.namespaces, self.veths), 1):
            ip("netns", "add", netns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            ip("link", "set", veth, "master", self.bridge, "up")
            ip("addr", "add", f"{NET}.{number}/24", "dev", "eth0", netns=netns)
            ip("link", "set", "eth0", "up", netns=netns)
            ip("link", "set", "lo", "up", netns=netns)

    def address(self, number):
        return f"{NET}.{number}"

    def cut(self, number):
        """Node `number` and the others no longer reach each other; clients still reach all."""
        for other in range(1, len(self.namespaces) + 1):
            if other != number:
                for a, b in [(number, other), (other, number)]:
                    ip("route", "add", "blackhole", f"{self.address(b)}/32",
                       netns=self.namespaces[a - 1])
                    self.cuts.append((a, b))

    def reaches(self, a, b, port=25672):
        """Whether node a's namespace opens a TCP connection to node b (its Erlang
        distribution port): what the cluster's nodes need to see each other."""
        probe = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], "
                 "int(sys.argv[2])), 2).close()\nexcept OSError:\n    sys.exit(1)")
        return subprocess.run(["ip", "netns", "exec", self.namespaces[a - 1], sys.executable,
                               "-c", probe, self.address(b), str(port)],
                              capture_output=True, timeout=30).returncode == 0

    def links(self):
        """{(a, b): whether a reaches b} for every pair of nodes, both ways."""
        count = len(self.namespaces)
        return {(a, b): self.reaches(a, b) for a in range(1, count + 1)
                for b in range(1, count + 1) if a != b}

    def heal(self):
        for a, b in self.cuts:
            ip("route", "del", "blackhole", f"{self.address(b)}/32",
               netns=self.namespaces[a - 1])
        self.cuts = []

    def close(self):
        for netns in self.namespaces:
            pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:  # epmd, and anything a failed node left
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        for link in [*self.veths, self.bridge]:
            subprocess.run(["ip", "link", "del", link], capture_output=True)


@pytest.fixture(scope="module")
def split_cluster(lane, data_dirs):
    if os.geteuid() != 0 or not shutil.which("ip"):
        cannot_run("the partition test needs root and ip (iproute2) for network namespaces")
    network = Network(3)
    names = [f"part{n}@{network.address(n)}" for n in (1, 2, 3)]
    config = [*lane.config, "loopback_users = none",
              "cluster_formation.peer_discovery_backend = classic_config",
              *[f"cluster_formation.classic_config.nodes.{n} = {name}"
                for n, name in enumerate(names, 1)]]
    cookie = os.urandom(16).hex().upper()
    nodes = [Node(data_dirs(), port=5672, dist_port=25672, name=f"part{n}",
                  host=network.address(n), netns=network.namespaces[n - 1], root=lane.root,
                  config_lines=config, cookie=cookie) for n in (1, 2, 3)]
    try:
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(120)
        yield network, nodes
    finally:
        network.heal()
        for node in nodes:
            node.stop()
        network.close()


def send_through_a_cut(broker, network, queue, cut_node, env):
    """send.py MESSAGES times in a row; the cut lasts CUT_SECONDS from message CUT_AT.
    Returns {body: (the finished send.py, seconds it took)}."""
    results, healer = {}, None
    for number in range(1, MESSAGES + 1):
        if number == CUT_AT:
            network.cut(cut_node)
            healer = threading.Timer(CUT_SECONDS, network.heal)
            healer.start()
            # The cut took effect (seen while it lasts, 20 s; this takes well under 1 s): the
            # cut node and the others do not reach each other, the other two still do.
            during = network.links()
            if during != {(a, b): cut_node not in (a, b) for a, b in during}:
                healer.cancel()
                network.heal()
                raise AssertionError(f"the cut of node {cut_node} left these links: {during}")
        started = time.monotonic()
        result = broker.start("send.py", "--quorum", "--queue", queue, "--timeout",
                              str(TIMEOUT), f"m{number}", env=env)
        result.wait(timeout=TIMEOUT + 15 + 10)  # fails the test if send.py outlives its bound
        results[f"m{number}"] = (result, time.monotonic() - started)
    healer.join()
    return results


def leader_of(node, queue):
    """The name of the node that leads the quorum queue, as node sees it."""
    out = node.ctl("list_queues", "-q", "--no-table-headers", "name", "leader").stdout
    return dict(line.split() for line in out.splitlines() if line.strip())[queue]


@pytest.mark.parametrize("cut_node", [1, 3], ids=["leader", "minority"])
def test_nothing_confirmed_is_lost_when_the_network_splits(split_cluster, lane, cut_node):
    network, nodes = split_cluster
    broker = Broker(nodes[0], lane)
    queue = f"split-{cut_node}"
    env = broker.env(AMQP_URL=",".join(node.url() for node in nodes))
    try:
        receiver = broker.start("receive.py", "--quorum", "--ack", "--queue", queue, env=env)
        receiver.wait_for_line("Waiting for messages")
        # Declared through node 1, so led there: cutting node 1 cuts off the leader.
        assert leader_of(nodes[0], queue) == nodes[0].name
        assert all(network.links().values())  # every node reaches every other before the cut

        results = send_through_a_cut(broker, network, queue, cut_node, env)

        assert all(network.links().values())  # and it healed
        confirmed = {body for body, (result, _) in results.items() if result.returncode == 0}

        def received():
            return [line.split("'")[1] for line in receiver.stdout_lines
                    if line.startswith(" [x] Received")]

        broker.wait_until(lambda: confirmed <= set(received()), "every confirmed message",
                          timeout=180)
        failed = [one_line_error(result) for result, _ in results.values()
                  if result.returncode != 0]  # exit 1, one line each
        longest = max(took for _, took in results.values())
        print(f"\n{lane.version}, cut node {cut_node} for {CUT_SECONDS} s: sent {MESSAGES}, "
              f"confirmed {len(confirmed)}, nacked {sum('nack' in f for f in failed)}, "
              f"unsure {sum('may or may not' in f for f in failed)}, "
              f"received {len(set(received()))}, duplicates "
              f"{len(received()) - len(set(received()))}, longest send {longest:.1f} s, "
              f"receiver notes: {receiver.stderr_lines}")
        assert all(any(fate in line for fate in ("nothing was sent", "is not in the queue",
                                                 "may or may not be in the queue"))
                   for line in failed), failed
        # send.py gives up on a confirm after --timeout + 15 s; pika alone waited 30-68 s.
        assert longest <= TIMEOUT + 15 + 5
        assert len(confirmed) >= MESSAGES // 2  # the majority side kept the queue going
    finally:
        broker.end_test()
