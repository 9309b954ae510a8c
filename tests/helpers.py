"""What the tests share: the RabbitMQ lanes, the scripts run as a user runs them,
and the broker as the tests see it. Fixtures live in conftest.py."""
import contextlib
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pytest

import rabbitmq4
from node import BrokerError, Node, wait_until

PROJECT = Path(__file__).resolve().parent.parent
TIMEOUT = 30  # seconds: the deadline for any one event we wait for
WAITING = " [*] Waiting for messages. To exit press CTRL+C"


@dataclass
class Lane:
    """One RabbitMQ version the whole suite runs against, and what it needs to be set up."""
    version: str
    config: list = field(default_factory=list)  # rabbitmq.conf lines of every node
    # How often the broker checks consumer timeouts. 3.x and 4.0 check every
    # channel_tick_interval (60 s by default; only advanced.config can set it),
    # 4.3 rejects the setting: its quorum queues check on their own.
    consumer_timeout_tick: str = "[{rabbit, [{channel_tick_interval, 1000}]}]."
    refuses_transient_queues: bool = False

    @property
    def root(self):
        """The debootstrapped root the node runs in (None: this machine's own RabbitMQ)."""
        return rabbitmq4.root_of(self.version) if self.version in rabbitmq4.SUITES else None

    @property
    def consumer_timeout_closes_channel(self):
        """Before 4.3: any queue, the channel is closed. 4.3: quorum queues only, a cancel."""
        return self.version != "4.3"

    def wrong_version(self, found):
        """None if found (a version of RabbitMQ) is a release of the lane's, else why not."""
        if found is None:
            return f"the RabbitMQ {self.version} lane finds no rabbitmq-server installed" + (
                f" in {self.root}" if self.root else "")
        if found.split(".")[:2] != self.version.split("."):
            return (f"the RabbitMQ {self.version} lane runs RabbitMQ {found}, not "
                    f"{self.version}.x" + (f" (in {self.root})" if self.root else ""))
        return None


LANES = {
    "rabbitmq3.10": Lane("3.10"),  # Debian 12's rabbitmq-server
    # 4.0.5 from Debian 13, refusing non-durable shared queues like 4.3's upstream default.
    "rabbitmq4.0": Lane("4.0", config=[rabbitmq4.REFUSE_TRANSIENT_QUEUES],
                        refuses_transient_queues=True),
    # 4.3.6 from Debian's development suite, with the broker's own defaults.
    "rabbitmq4.3": Lane("4.3", consumer_timeout_tick="[]."),
}


def installed_version(root=None):
    """The upstream version of Debian's rabbitmq-server installed (in root, if given):
    the RabbitMQ that /usr/lib/rabbitmq/bin runs there. None if it is not installed."""
    admindir = Path(root or "/") / "var" / "lib" / "dpkg"
    result = subprocess.run(["dpkg-query", f"--admindir={admindir}", "-W", "-f=${Version}",
                             "rabbitmq-server"], capture_output=True, text=True)
    match = re.match(r"(?:\d+:)?(\d+(?:\.\d+)+)", result.stdout)  # no epoch, no Debian part
    return match.group(1) if result.returncode == 0 and match else None


def cannot_run(reason):
    """What cannot run here is skipped with the reason; under CI it is a failure: a CI
    that skipped a lane would pass having tested less than it says."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def make_node(lane, data_dir, config_lines=(), **settings):
    """A node of the lane (not started yet)."""
    return Node(data_dir, root=lane.root, config_lines=[*lane.config, *config_lines], **settings)


class Script:
    """send.py or receive.py running in the background, its output read as it comes."""

    def __init__(self, args, env, stdin=None, stdout=subprocess.PIPE):
        """stdin: None (nothing), bytes (written, then closed) or "open" (see feed())."""
        self.process = subprocess.Popen(
            args, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=stdout, stderr=subprocess.PIPE)
        self.stdout_lines, self.stderr_lines = [], []
        self.stdout_bytes = bytearray()
        self.lane = None  # the Lane of the broker it was run against (Broker.start sets it)
        self._new_lines = queue.Queue()
        self._ends = 0
        self.returncode = None
        if isinstance(stdin, bytes):
            threading.Thread(target=self._write, args=(stdin,), daemon=True).start()
        streams = [(self.process.stderr, self.stderr_lines)]
        if stdout == subprocess.PIPE:
            streams.append((self.process.stdout, self.stdout_lines))
        else:
            self._ends += 1
        for stream, lines in streams:
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    def _write(self, data):
        try:
            self.process.stdin.write(data)
            self.process.stdin.close()
        except BrokenPipeError:
            pass

    def feed(self, data):
        """Write to stdin kept open (stdin="open")."""
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def _read(self, stream, lines):
        for line in stream:
            if lines is self.stdout_lines:
                self.stdout_bytes += line
            lines.append(line.decode("utf-8", "backslashreplace").rstrip("\n"))
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


def one_line_error(result, status=1):
    """The error a user sees: the exit status, and a single line on stderr (notes aside)."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr_lines if ": note: " not in line]
    if status == 2:  # argparse: the usage, then the error line
        errors = [line for line in errors if line.startswith(("send.py", "receive.py"))]
    assert len(errors) == 1, result.stderr
    return errors[0]


# The notes a success may print on a lane that refuses non-durable queues (4.0 here, 4.3's
# upstream default): the queue declared durable, then met again by a non-durable declare.
LANE_NOTES = (r"this RabbitMQ refuses non-durable queues; declaring '[^']*' durable",
              r"queue '[^']*' already exists with other settings \(durable is 'true'\); "
              r"using it as it is")


def stray_lines(result, *expected):
    """The stderr lines a run that succeeded may not print: anything but a note containing
    one of `expected`, or on a lane that refuses non-durable queues, the notes about it."""
    lane_notes = LANE_NOTES if result.lane and result.lane.refuses_transient_queues else ()
    script = r"(?:send|receive)\.py: note: "
    return [line for line in result.stderr_lines
            if not (": note: " in line and any(word in line for word in expected))
            and not any(re.fullmatch(script + note, line) for note in lane_notes)]


def script_env(url, **extra):
    """The environment a user's shell gives the scripts: AMQP_URL set, nothing of ours."""
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "HELLO_TRACEBACK")}
    env.update(AMQP_URL=url, PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def queues_named(args):
    """The queue names a script's arguments give (--queue NAME, --queue=NAME), if valid."""
    names = {value.split("=", 1)[1] if value.startswith("--queue=") else args[i + 1]
             for i, value in enumerate(args)
             if value.startswith("--queue=") or (value == "--queue" and i + 1 < len(args))}
    return {name for name in names if 0 < len(name.encode(errors="surrogateescape")) < 256}


FAILED = pytest.StashKey[bool]()  # set on a test's item once a phase of it failed


def failed(request):
    """True if the test that requested the fixture failed (for the fixture's teardown)."""
    return request.node.stash.get(FAILED, False)


class Scripts:
    """send.py and receive.py, run as a user runs them with AMQP_URL set to self.url."""

    def __init__(self, url):
        self.url = url
        self.scripts = []

    def env(self, **extra):
        return script_env(self.url, **extra)

    def start(self, script, *args, env=None, stdin=None, stdout=subprocess.PIPE):
        running = Script([sys.executable, str(PROJECT / script), *args], env or self.env(),
                         stdin=stdin, stdout=stdout)
        self.scripts.append(running)
        return running

    def run(self, script, *args, timeout=TIMEOUT, **kwargs):
        running = self.start(script, *args, **kwargs)
        running.wait(timeout)
        return running

    def send(self, *args, **kwargs):
        return self.run("send.py", *args, **kwargs)

    def receive(self, *args, **kwargs):
        return self.run("receive.py", *args, **kwargs)

    def kill_scripts(self):
        for script in self.scripts:
            script.kill()
        self.scripts = []


class NoBroker(Scripts):
    """No broker at all, for what the scripts must refuse before connecting: AMQP_URL names
    a loopback port that listens and never answers, and connections() counts what came."""

    def __init__(self, ca_file):
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self.tls_port = self._server.getsockname()[1]
        self.ca_file = ca_file  # a CA certificate, for URLs whose ssl_options name one
        self._came = 0
        super().__init__(f"amqp://guest:guest@127.0.0.1:{self.port}/%2F")

    def connections(self):
        """Connections made to the port so far: the kernel queues each until accepted."""
        self._server.setblocking(False)
        while True:
            try:
                self._server.accept()[0].close()
            except BlockingIOError:
                return self._came
            self._came += 1

    def close(self):
        self.kill_scripts()
        self._server.close()


class Broker(Scripts):
    """A test session's broker as the tests see it: run the scripts, look at the queues."""

    def __init__(self, node, lane):
        super().__init__(node.url())
        self.node = node
        self.lane = lane
        self.queues = {"hello"}  # the queues the test named: end_test deletes them
        self._connections = []

    @property
    def port(self):
        return self.node.port

    def start(self, script, *args, **kwargs):
        self.queues |= queues_named(args)
        running = super().start(script, *args, **kwargs)
        running.lane = self.lane
        return running

    def no_errors(self, result):
        """Nothing on stderr, but where 'hello' must be durable, the notes that say so."""
        return stray_lines(result) == []

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

    def bodies(self, queue_name="hello"):
        """Take every message out of the queue; return their bodies in order."""
        channel, bodies = self.channel(), []
        while True:
            method, _, body = channel.basic_get(queue_name, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)

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
        self.queues = {"hello"}
        self.channel().queue_delete("hello")

    def end_test(self, failed=False):
        """End the test's scripts and delete the queues it named, passed or failed; after a
        failure every queue on the node, so that what it left cannot fail the next test."""
        self.kill_scripts()
        try:
            if failed:
                self.queues |= set(self.node.queue_counts())
            for name in sorted(self.queues):
                try:
                    self.channel().queue_delete(name)
                except pika.exceptions.ChannelClosedByBroker:
                    pass  # exclusive to a killed script's connection: it goes with it
        except (pika.exceptions.AMQPConnectionError, BrokerError, subprocess.TimeoutExpired):
            pass  # the node is down (the test killed it); what is on it goes with it
        self.close_connections()


def told(line, fate):
    """The line numbers an error line gives for a fate: 'lines 1-4,500, 4,502 sent and ...'."""
    found = re.search(r"\blines? ([0-9,\- ]+?) " + re.escape(fate), line)
    numbers = []
    for span in (found.group(1).split(", ") if found else []):
        first, _, last = span.replace(",", "").partition("-")
        numbers += range(int(first), int(last or first) + 1)
    return numbers


@contextlib.contextmanager
def proxy(port, passes):
    """A URL for the broker on port through a proxy of the test's own, a thread a direction.
    passes(data, towards_broker) gives what to pass on, or None to cut the connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def relay(source, target, towards_broker):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                data = passes(data, towards_broker)
                if data is None:
                    break
                target.sendall(data)
        for end in (source, target):  # both ends see the cut at once
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve():
        with contextlib.suppress(OSError):
            while True:
                client = server.accept()[0]
                upstream = socket.create_connection(("127.0.0.1", port))
                for ends in [(client, upstream, True), (upstream, client, False)]:
                    threading.Thread(target=relay, args=ends, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"amqp://guest:guest@127.0.0.1:{server.getsockname()[1]}/%2F"
    finally:
        server.close()
