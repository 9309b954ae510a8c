"""A throwaway RabbitMQ for the tests, and helpers to run the real scripts.

Every test session starts its own node(s) on free loopback ports with data in
temporary directories, and stops them: never the user's broker on 5672.
Two lanes: Debian 12's RabbitMQ 3.10 and Debian 13's RabbitMQ 4.0 (in a
chroot), the latter configured like 4.3 (non-durable shared queues refused).
"""
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pika
import pytest
import trustme

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT / "broker"))

import rabbitmq4  # noqa: E402
from node import Cluster, Node, epmd_running, free_port, stop_epmd, wait_until  # noqa: E402

TIMEOUT = 30  # seconds: the deadline for any one event we wait for


class Script:
    """send.py or receive.py running in the background, its output read as it comes."""

    def __init__(self, args, env):
        self.process = subprocess.Popen(
            args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="backslashreplace")
        self.stdout_lines = []
        self.stderr_lines = []
        self._new_lines = queue.Queue()
        self._ends = 0
        self.returncode = None
        for stream, lines in [(self.process.stdout, self.stdout_lines),
                              (self.process.stderr, self.stderr_lines)]:
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    def _read(self, stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))
            self._new_lines.put(line)
        self._new_lines.put(None)

    def wait_for_line(self, text, timeout=TIMEOUT, stderr=False):
        """Wait until stdout (or stderr) has a line containing text; return that line."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stderr_lines if stderr else self.stdout_lines:
                if text in line:
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line with {text!r} within {timeout} s; "
                                     f"stdout: {self.stdout_lines}, stderr: {self.stderr_lines}")
            try:
                self._new_lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                pass

    def wait(self, timeout=TIMEOUT):
        """Wait for the exit; return the exit status (stdout and stderr read in full)."""
        try:
            self.returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s; stdout: "
                                 f"{self.stdout_lines}, stderr: {self.stderr_lines}") from None
        while self._ends < 2:  # both reader threads are done
            self._ends += self._new_lines.get(timeout=timeout) is None
        return self.returncode

    def signal(self, signum):
        self.process.send_signal(signum)

    @property
    def stdout(self):
        return "".join(line + "\n" for line in self.stdout_lines)

    @property
    def stderr(self):
        return "".join(line + "\n" for line in self.stderr_lines)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Broker:
    """The test session's broker as the tests see it."""

    def __init__(self, node, lane):
        self.node = node
        self.lane = lane
        self.refuses_transient_queues = lane == "rabbitmq4"
        self.url = node.url()
        self.scripts = []

    # -- the two scripts, as a user runs them ---------------------------------

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k != "AMQP_URL"}
        env.update(AMQP_URL=self.url, PYTHONDONTWRITEBYTECODE="1")
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    def start(self, script, *args, env=None):
        running = Script([sys.executable, str(PROJECT / script), *args], env or self.env())
        self.scripts.append(running)
        return running

    def run(self, script, *args, env=None, timeout=TIMEOUT):
        running = self.start(script, *args, env=env)
        running.wait(timeout)
        return running

    def send(self, *args, **kwargs):
        return self.run("send.py", *args, **kwargs)

    def receive(self, *args, **kwargs):
        return self.run("receive.py", *args, **kwargs)

    def no_errors(self, result):
        """Nothing on stderr, but on RabbitMQ 4.3's defaults the note that 'hello' is durable."""
        if self.refuses_transient_queues:
            return all(": note: " in line for line in result.stderr_lines)
        return result.stderr_lines == []

    # -- looking at the broker from the side ----------------------------------

    def channel(self):
        """A channel on the tests' own connection (opened again after a broker restart)."""
        if not (self._connections and self._connections[-1].is_open):
            self._connections.append(pika.BlockingConnection(pika.URLParameters(self.url)))
        return self._connections[-1].channel()

    def message_count(self, queue_name="hello"):
        """Messages ready in the queue (exact, unlike list_queues), or None if there is no queue."""
        channel = self.channel()
        try:
            count = channel.queue_declare(queue_name, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 404:
                return None
            raise
        channel.close()
        return count

    def wait_until(self, condition, what, timeout=TIMEOUT):
        wait_until(condition, timeout, what)

    def crash_and_restart(self):
        """kill -9 the broker (no clean shutdown), then start it on the same data."""
        self.close_connections()
        self.node.kill()
        self.node.start()

    def close_connections(self):
        for connection in self._connections:
            if connection.is_open:
                try:
                    connection.close()
                except pika.exceptions.AMQPError:
                    pass
        self._connections = []

    def begin_test(self):
        self._connections = []
        self.scripts = []
        channel = self.channel()
        channel.queue_delete("hello")

    def end_test(self):
        for script in self.scripts:
            script.kill()
        self.close_connections()


def lane_settings(lane, config_lines=()):
    """Node settings of the lane: 4.x runs in the chroot, configured like 4.3."""
    if lane == "rabbitmq4":
        return dict(root=rabbitmq4.ROOT,
                    config_lines=[*config_lines, rabbitmq4.REFUSE_TRANSIENT_QUEUES])
    return dict(config_lines=list(config_lines))


def make_node(lane, data_dir, config_lines=(), **settings):
    """A node of the lane (not started yet)."""
    return Node(data_dir, **lane_settings(lane, config_lines), **settings)


def tls_listener(node, port):
    """A CA and a server certificate for 127.0.0.1/localhost (trustme), and the
    rabbitmq.conf lines for a TLS listener that uses them."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    tls = node.data_dir / "tls"
    tls.mkdir()
    ca.cert_pem.write_to_path(tls / "ca.pem")
    server.cert_chain_pems[0].write_to_path(tls / "server.pem")
    server.private_key_pem.write_to_path(tls / "server.key")
    inside = node.seen_by_node(tls)
    return tls / "ca.pem", [
        f"listeners.ssl.default = 127.0.0.1:{port}",
        f"ssl_options.cacertfile = {inside}/ca.pem",
        f"ssl_options.certfile = {inside}/server.pem",
        f"ssl_options.keyfile = {inside}/server.key",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ]


@pytest.fixture(scope="session", params=["rabbitmq3", "rabbitmq4"])
def lane(request):
    """Which RabbitMQ: Debian 12's 3.10, or 4.0 in a Debian 13 chroot."""
    if request.param == "rabbitmq4":
        reason = rabbitmq4.why_unavailable()
        if reason:
            pytest.skip(reason)
        rabbitmq4.prepare()
        with rabbitmq4.mounted():
            yield request.param
    else:
        yield request.param


@pytest.fixture(scope="session")
def data_dirs(lane):
    """Makes temporary data dirs (inside the chroot for the 4.x lane); removes them."""
    made = []

    def make():
        base = rabbitmq4.ROOT / "tmp" if lane == "rabbitmq4" else None
        made.append(Path(tempfile.mkdtemp(prefix="hello-rabbitmq-test-", dir=base)))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def session_broker(lane, data_dirs, epmd_cleanup):
    """The lane's main node, with a TLS listener too."""
    node = make_node(lane, data_dirs())
    tls_port = free_port()
    ca_file, tls_config = tls_listener(node, tls_port)
    node.config_lines += tls_config
    node.start()
    broker = Broker(node, lane)
    broker.tls_url = f"amqps://guest:guest@localhost:{tls_port}/%2F"
    broker.ca_file = str(ca_file)
    yield broker
    node.stop()


@pytest.fixture(scope="session")
def strict_session_broker(lane, data_dirs, epmd_cleanup):
    """A node with a 5 s consumer timeout (checked every second) and 1 KiB messages at most."""
    node = make_node(lane, data_dirs(),
                     config_lines=["consumer_timeout = 5000", "max_message_size = 1024"],
                     advanced_config="[{rabbit, [{channel_tick_interval, 1000}]}].").start()
    yield Broker(node, lane)
    node.stop()


@pytest.fixture(scope="session")
def cluster(lane, data_dirs, epmd_cleanup):
    """Three nodes of the lane joined into one cluster, on free loopback ports."""
    nodes = Cluster(data_dirs(), [free_port() for _ in range(3)], name="cluster",
                    **lane_settings(lane)).start()
    yield nodes
    nodes.stop()


@pytest.fixture
def broker(session_broker):
    """The session's broker, with queue 'hello' deleted and our processes ended after."""
    session_broker.begin_test()
    yield session_broker
    session_broker.end_test()


@pytest.fixture
def strict_broker(strict_session_broker):
    strict_session_broker.begin_test()
    yield strict_session_broker
    strict_session_broker.end_test()


@pytest.fixture(scope="session")
def epmd_cleanup():
    """Erlang's port mapper outlives the nodes; stop it if we started it."""
    was_running = epmd_running()
    yield
    if not was_running:
        stop_epmd()


@pytest.fixture
def closed_port():
    """A loopback port where nothing listens."""
    return free_port()
