"""A RabbitMQ node of our own: start, stop, crash, restart, rabbitmqctl.

One place for the broker handling that the tests, the benchmark and the
local-broker helper (broker/local.py) share. Standard library only, so the
helper runs before any virtual environment exists.

Facts behind the choices (measured, see the project notes):
- /usr/lib/rabbitmq/bin, not the /usr/sbin wrappers: those switch to user
  rabbitmq when run as root and then the Erlang cookie differs.
- Every file the node uses lives in its data dir (HOME holds the cookie), so
  nodes never touch /etc/rabbitmq, /var/lib/rabbitmq or each other.
- Listeners, AMQP and Erlang distribution alike, bind to 127.0.0.1 only (a node
  in a test's network namespace binds to its address there, which exists only
  among those namespaces).
- Ready means the log says "Server startup complete" and the AMQP port answers
  a protocol header; a boot that fails still exits 0, so we stop waiting as
  soon as the process is gone.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"


class BrokerError(RuntimeError):
    pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(port):
    """True when nothing holds the port on loopback (we could listen on it)."""
    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False


def answers_amqp(port, host="127.0.0.1"):
    """True when an AMQP 0-9-1 broker answers on the port (Connection.Start)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(1) == b"\x01"  # a method frame
    except OSError:
        return False


def process_exists(pid):
    """True while the process runs (a zombie left for a parent that is gone does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def is_vm_of(pid, home):
    """True if the process is an Erlang VM whose home is that node's data dir (each node
    has its own). A pid file outlives its node (a reboot, an out-of-memory kill) and
    may then name anyone's process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            cmdline = file.read()
    except OSError:
        return False
    return b"beam" in cmdline.split(b"\0")[0] and b"\0-home\0%s\0" % home.encode() in cmdline


def in_root(root, *command):
    """The command run with chroot in root, with /proc and /dev mounted there in a mount
    namespace of its own: the mounts vanish with its last process, whatever kills it,
    and the host never sees them (unshare makes the namespace's mounts private)."""
    mount = 'mount -t proc proc "$0/proc" && mount --bind /dev "$0/dev" && exec chroot "$0" "$@"'
    return ["unshare", "--mount", "sh", "-c", mount, str(root), *command]


def mounts_under(path):
    """Mount points at or below path, as /proc/self/mountinfo lists them."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
                  for line in mountinfo]
    return [point for point in points if point == path or point.startswith(path + "/")]


def remove_tree(path):
    """shutil.rmtree, which descends into mount points: refuse while anything is mounted
    below path (a /dev bound there would lose the host's device files)."""
    if os.path.exists(path):
        mounted = mounts_under(path)
        if mounted:
            raise BrokerError(f"not removing {path}: {mounted[0]} is mounted inside it "
                              f"(unmount it first: umount -R {mounted[0]})")
    shutil.rmtree(path, ignore_errors=True)


def wait_until(condition, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BrokerError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def epmd_running():
    return subprocess.run(["epmd", "-names"], capture_output=True).returncode == 0


def epmd_names():
    """The Erlang nodes registered with epmd (the port mapper our nodes start)."""
    out = subprocess.run(["epmd", "-names"], capture_output=True, text=True).stdout
    return [line.split()[1] for line in out.splitlines() if line.startswith("name ")]


def stop_epmd():
    """Stop the Erlang port mapper that our nodes started (it outlives them)."""
    subprocess.run(["epmd", "-kill"], capture_output=True)


class Node:
    """One RabbitMQ node with its own name, ports and data dir.

    root: run the node inside that directory with chroot (the Debian 13 root
    with RabbitMQ 4.x); data_dir must then lie inside root.
    netns: run it (and rabbitmqctl) in that network namespace, listening on host,
    an address that exists only among the test's namespaces; the node is then
    named by that address (tests/test_partition.py).
    plugins: the plugins to enable; none by default, so throwaway nodes stay lean.
    """

    def __init__(self, data_dir, port=None, name=None, dist_port=None, root=None,
                 config_lines=(), advanced_config="[].", cookie=None, netns=None, host=None,
                 plugins=()):
        self.data_dir = Path(data_dir).resolve()
        self.root = Path(root).resolve() if root else None
        self.port = port or free_port()
        self.dist_port = dist_port or free_port()
        self.netns = netns
        self.host = host or "127.0.0.1"
        self.name = f"{name or f'throwaway-{self.port}'}@{host or 'localhost'}"
        self.config_lines = list(config_lines)
        self.advanced_config = advanced_config
        self.plugins = list(plugins)
        self.cookie = cookie  # nodes of one cluster share their Erlang cookie
        self.ctl_port = min(free_port(), 65500)  # rabbitmqctl's own Erlang node
        self.process = None
        self.stale_pid = None  # the pid a stale pid file named, once beam_pid removed it
        self._log_mark = 0

    # -- paths and environment ------------------------------------------------

    def seen_by_node(self, path):
        """The path as the node sees it (inside the chroot, if any)."""
        if self.root is None:
            return str(path)
        return "/" + str(Path(path).relative_to(self.root))

    @property
    def pid_file(self):
        return self.data_dir / "mnesia" / f"{self.name}.pid"

    @property
    def log_file(self):
        return self.data_dir / "console.log"

    def env(self):
        inside = self.seen_by_node
        env = dict(os.environ)
        erlang_address = "{" + self.host.replace(".", ",") + "}"
        env.update(
            HOME=inside(self.data_dir),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CTL_DIST_PORT_MIN=str(self.ctl_port),
            RABBITMQ_CTL_DIST_PORT_MAX=str(self.ctl_port + 10),
            RABBITMQ_MNESIA_BASE=inside(self.data_dir / "mnesia"),
            RABBITMQ_LOG_BASE=inside(self.data_dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=inside(self.data_dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=inside(self.data_dir / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=inside(self.data_dir / "advanced.config"),
            ERL_EPMD_ADDRESS="127.0.0.1" if self.netns is None else f"127.0.0.1,{self.host}",
            ERL_CRASH_DUMP=inside(self.data_dir / "erl_crash.dump"),  # not in the cwd
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=f"-kernel inet_dist_use_interface {erlang_address}",
        )
        if self.netns is not None:
            env["RABBITMQ_USE_LONGNAME"] = "true"
        return env

    def _command(self, program, *args):
        command = [f"{RABBITMQ_BIN}/{program}", *args]
        if self.root is not None:
            command = in_root(self.root, *command)
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        return command

    def _write_files(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        (self.data_dir / "rabbitmq.conf").write_text(
            "".join(line + "\n" for line in self.config_lines))
        (self.data_dir / "advanced.config").write_text(self.advanced_config + "\n")
        cookie_file = self.data_dir / ".erlang.cookie"
        if self.cookie and not cookie_file.exists():
            cookie_file.write_text(self.cookie)
            cookie_file.chmod(0o400)

    # -- life cycle -----------------------------------------------------------

    def start(self, timeout=90, detached=False):
        """Start the node and return once it answers AMQP.

        detached: the node outlives this process (the user's local broker).
        """
        self.launch(detached)
        return self.wait_ready(timeout)

    def launch(self, detached=False):
        if answers_amqp(self.port, self.host):
            raise BrokerError(f"port {self.port} is already taken by another broker")
        self._write_files()
        self.mark_log()
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self._command("rabbitmq-server"), env=self.env(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=detached)

    @property
    def node_log(self):
        return self.data_dir / "log" / f"{self.name}.log"

    def mark_log(self):
        """Remember where the node's log ends: wait_ready looks only at what follows."""
        self._log_mark = self.node_log.stat().st_size if self.node_log.exists() else 0

    def startup_complete(self):
        try:
            with open(self.node_log, "rb") as log:
                log.seek(self._log_mark)
                return b"Server startup complete" in log.read()
        except OSError:
            return False

    def wait_ready(self, timeout=90):
        # The AMQP port opens before the boot ends (the TLS listener, for one, comes
        # later); clients that come that early saw queue deletions go unannounced.
        def ready():
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"RabbitMQ did not start: {self.why_boot_failed()} "
                                  f"(log: {self.log_file})")
            return self.startup_complete() and answers_amqp(self.port, self.host)

        wait_until(ready, timeout, f"RabbitMQ on {self.host}:{self.port}")
        return self

    def why_boot_failed(self):
        """The reason a failed boot left in the console log, in one line."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "it left no log"
        if "eaddrinuse" in text:
            return f"port {self.port} is already in use"
        if "nxdomain" in text:
            return "the host name localhost does not resolve (is /etc/hosts missing?)"
        # Log lines lose their time stamp and level; RabbitMQ's own words come first.
        lines = [re.sub(r"^\S+ \S+ \[\w+\] <[\d.]+> ", "", line).strip()
                 for line in text.splitlines() if line.strip()]
        for line in lines:
            if line.startswith(("ERROR: ", "You've tried to set")):
                return line.removeprefix("ERROR: ")
        return next((line for line in lines if line.startswith("Error during startup")),
                    lines[-1] if lines else "its log is empty")

    def beam_pid(self):
        """The pid of this node's Erlang VM while it runs, else None. Only a process
        that is this node counts: a stale pid file is removed (see stale_pid)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if is_vm_of(pid, self.seen_by_node(self.data_dir)):
            return pid
        self.pid_file.unlink(missing_ok=True)
        self.stale_pid = pid
        return None

    def is_running(self):
        return self.beam_pid() is not None

    def stop(self, timeout=60):
        """Clean shutdown: SIGTERM makes the Erlang VM stop the node in order."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self, timeout=30):
        """A crash: SIGKILL the Erlang VM, no chance to flush anything."""
        self._signal_and_wait(signal.SIGKILL, timeout)

    def restart(self, timeout=90):
        self.stop()
        return self.start(timeout)

    def _signal_and_wait(self, signum, timeout):
        pid = self.beam_pid()  # the pid file goes early in a shutdown: wait for the process
        if pid is not None:
            os.kill(pid, signum)
            wait_until(lambda: not process_exists(pid), timeout, "RabbitMQ to exit")
            wait_until(lambda: not port_is_open(self.port, self.host), timeout,
                       f"port {self.port} to close")
        if self.process is not None:  # the rabbitmq-server script that started it
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        self.pid_file.unlink(missing_ok=True)

    # -- tools ----------------------------------------------------------------

    def ctl(self, *args, check=True, capture=True, timeout=60):
        """Run rabbitmqctl against this node; returns the CompletedProcess."""
        result = subprocess.run(
            self._command("rabbitmqctl", *args), env=self.env(), capture_output=capture,
            text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise BrokerError(f"rabbitmqctl {' '.join(args)} failed: "
                              f"{(result.stderr or result.stdout).strip()}")
        return result

    def queue_counts(self):
        """{queue name: message count}, the blog's `rabbitmqctl list_queues`."""
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages").stdout
        return {name: int(count) for name, count in
                (line.rsplit(None, 1) for line in out.splitlines() if line.strip())}

    def url(self, user="guest", password="guest", vhost="%2F", query=""):
        url = f"amqp://{user}:{password}@{self.host}:{self.port}/{vhost}"
        return f"{url}?{query}" if query else url


class Cluster:
    """Nodes on loopback joined into one RabbitMQ cluster, each with its own data dir."""

    def __init__(self, base_dir, ports, name="node", **settings):
        base_dir = Path(base_dir)
        cookie = (base_dir / "cookie").read_text() if (base_dir / "cookie").exists() else \
            os.urandom(16).hex().upper()
        base_dir.mkdir(parents=True, exist_ok=True)
        (base_dir / "cookie").write_text(cookie)
        self.formed_mark = base_dir / "formed"
        self.nodes = [Node(base_dir / f"{name}{number}", port=port, name=f"{name}{number}",
                           cookie=cookie, **settings)
                      for number, port in enumerate(ports, 1)]

    def start(self, timeout=120, detached=False):
        """Start every node (at once: restarted members wait for each other), then join."""
        for node in self.nodes:
            if not node.is_running():
                node.launch(detached)
        for node in self.nodes:
            node.wait_ready(timeout)
        if not self.formed_mark.exists():
            first = self.nodes[0]
            for node in self.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.mark_log()
                node.ctl("start_app")
                node.wait_ready(timeout)
            self.formed_mark.touch()
        return self

    def stop(self):
        for node in self.nodes:
            node.stop()

    def urls(self):
        return [node.url() for node in self.nodes]
