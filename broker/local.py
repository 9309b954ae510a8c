"""A local RabbitMQ for trying the scripts: start, stop, status, rabbitmqctl.

    python3 broker/local.py start     # reuse a broker on localhost:5672, or start ours
    python3 broker/local.py stop      # stop ours (never someone else's)
    python3 broker/local.py crash     # kill -9 ours: a crash, for the persistence demo
    python3 broker/local.py status    # what answers on 5672, and how to stop it
    broker/rabbitmqctl list_queues    # the blog's command, for our node or the system's

    python3 broker/local.py cluster start    # a 3-node cluster on ports 5672, 5673, 5674
    python3 broker/local.py cluster crash N  # kill -9 node N (1-3), to try failover
    python3 broker/local.py cluster stop

Our node is Debian's rabbitmq-server (installed with apt-get if missing,
through sudo when not root), listening on 127.0.0.1:5672 only, with all its
data in .broker/ of this project (git-ignored), and the web UI (the management
plugin) on 127.0.0.1:15672 only. Running start twice is fine.

A broker that already answers on 5672 is used as it is, never stopped,
restarted or reconfigured. Debian's system service (node rabbit@HOSTNAME, run
by the rabbitmq user: what apt-get starts on a machine with systemd) is
reached through its own rabbitmqctl (sudo rabbitmqctl when not root).
Standard library only.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from node import (
    RABBITMQ_BIN,
    BrokerError,
    Cluster,
    Node,
    answers_amqp,
    epmd_names,
    epmd_running,
    free_port,
    port_is_free,
    stop_epmd,
)

PROJECT = Path(__file__).resolve().parent.parent
PORT = 5672
DIST_PORT = 25672  # Erlang distribution, RabbitMQ's usual choice
WEB_PORT = 15672  # the management plugin's web UI and HTTP API
WEB_UI = f"http://localhost:{WEB_PORT}"
EPMD_MARK = PROJECT / ".broker" / "epmd-started-here"


def our_node(dist_port=DIST_PORT, web=False):
    # Learners meet RabbitMQ through the web UI; it listens on loopback only, as AMQP does.
    settings = dict(plugins=["rabbitmq_management"], config_lines=[
        "management.tcp.ip = 127.0.0.1", f"management.tcp.port = {WEB_PORT}"]) if web else {}
    return Node(PROJECT / ".broker", port=PORT, dist_port=dist_port, name="hello", **settings)


def web_ui_line():
    return f"Web UI: {WEB_UI} (user guest, password guest; from this machine only)"


def sudo(*command):
    """The command as this user types it: through sudo unless root."""
    return " ".join(command) if os.geteuid() == 0 else "sudo " + " ".join(command)


def system_node():
    """The name of Debian's system RabbitMQ if it runs here (rabbit@HOSTNAME, an Erlang VM
    of the rabbitmq user with its home, registered as 'rabbit' with epmd), else None."""
    try:
        user = pwd.getpwnam("rabbitmq")
    except KeyError:
        return None
    try:
        if "rabbit" not in epmd_names():
            return None
    except OSError:  # no Erlang here: no system node either
        return None
    home = f"-home\0{user.pw_dir}\0".encode()
    for process in Path("/proc").glob("[0-9]*"):
        try:
            if (process.stat().st_uid == user.pw_uid and home in (process / "cmdline").read_bytes()
                    and (process / "comm").read_text().strip() == "beam.smp"):
                return "rabbit@" + socket.gethostname().split(".")[0]
        except OSError:  # gone meanwhile
            continue
    return None


def web_ui_answers():
    """True when RabbitMQ's management plugin answers on localhost:15672."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/api/overview", timeout=5)
    except urllib.error.HTTPError as error:  # 401 without a user: the API is there
        return error.code == 401 and "RabbitMQ" in error.headers.get("WWW-Authenticate", "")
    except OSError:
        return False
    return True


def docker_container():
    """The name of the Docker container that publishes port 5672, if Docker knows one."""
    if not shutil.which("docker"):
        return None
    try:
        names = subprocess.run(["docker", "ps", "--filter", f"publish={PORT}", "--format",
                                "{{.Names}}"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (names.stdout.split() or [None])[0] if names.returncode == 0 else None


def system_web_ui_line():
    if web_ui_answers():
        return web_ui_line()
    return ("Web UI: off on the system's RabbitMQ; to turn it on (on every network "
            f"interface): {sudo('rabbitmq-plugins enable rabbitmq_management')}")


def others_web_ui_line():
    if web_ui_answers():
        return f"Web UI: {WEB_UI} (log in as that broker's user; guest/guest on a default one)"
    container = docker_container()
    if container:
        return (f"Web UI: none on localhost:{WEB_PORT}; turn it on with: docker exec {container} "
                f"rabbitmq-plugins enable rabbitmq_management (with port {WEB_PORT} published)")
    return (f"Web UI: none on localhost:{WEB_PORT}; turn it on where that broker runs: "
            "rabbitmq-plugins enable rabbitmq_management")


def others_rabbitmqctl(args):
    container = docker_container()
    typed = " ".join(["rabbitmqctl", *args]) if args else "rabbitmqctl ..."
    if container:
        return f"docker exec {container} {typed}"
    return f"{typed} where it runs (Docker: docker exec CONTAINER {typed})"


def stop_system_line():
    if Path("/run/systemd/system").is_dir():
        return sudo("systemctl stop rabbitmq-server")
    return sudo("rabbitmqctl stop")


def our_cluster():
    return Cluster(PROJECT / ".broker" / "cluster", [PORT, PORT + 1, PORT + 2], name="hello")


def running_nodes():
    return [node for node in [our_node(), *our_cluster().nodes] if node.is_running()]


def ensure_installed():
    if Path(RABBITMQ_BIN, "rabbitmq-server").exists():
        return
    if not shutil.which("apt-get"):
        sys.exit("local.py: RabbitMQ is not installed and this is not Debian/Ubuntu; "
                 "install rabbitmq-server, or run a broker on localhost:5672 (see docs/broker.md)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    # What the package does besides installing, said before it happens.
    print("Installing RabbitMQ (Debian's rabbitmq-server); on a machine with systemd, Debian "
          "starts it as a system service, enabled at boot and listening on all interfaces "
          f"(to stop and disable it: {' '.join(sudo + ['systemctl'])} disable --now "
          "rabbitmq-server) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-q"],
                    ["apt-get", "install", "-y", "-q", "rabbitmq-server"]):
        subprocess.run(sudo + command, check=True, env=env, stdout=subprocess.DEVNULL)


def start():
    node = our_node()
    if node.is_running():
        print(f"RabbitMQ (this project's) is already running on 127.0.0.1:{PORT}")
        if "rabbitmq_management" in (PROJECT / ".broker" / "enabled_plugins").read_text():
            print(web_ui_line())
        return
    if any(member.is_running() for member in our_cluster().nodes):
        print(f"This project's cluster is running (ports {PORT}-{PORT + 2}); using it")
        return
    if not answers_amqp(PORT):
        ensure_installed()  # on a machine with systemd, apt-get starts Debian's service
    if answers_amqp(PORT):
        use_theirs()
        return
    dist_port = DIST_PORT
    if not port_is_free(DIST_PORT):  # another Erlang node (or anything) holds it
        dist_port = free_port()
        print(f"Port {DIST_PORT} is taken; our node uses {dist_port} for Erlang "
              "distribution instead")
    web = port_is_free(WEB_PORT)  # a listener that cannot bind would fail the whole boot
    if not web:
        print(f"Port {WEB_PORT} is taken; our node starts without the web UI")
    node = our_node(dist_port, web)
    remember_epmd()
    print(f"Starting RabbitMQ on 127.0.0.1:{PORT} (data in .broker/) ...", flush=True)
    node.start(detached=True)
    print(f"RabbitMQ is ready on 127.0.0.1:{PORT}; stop it with: python3 broker/local.py stop")
    if web:
        print(web_ui_line())


def use_theirs():
    """A broker that is not ours answers on 5672: used as it is, and said which."""
    node = system_node()
    if node:
        print(f"The system's RabbitMQ (Debian's service, node {node}) answers on "
              f"localhost:{PORT}; using it as it is")
        print(system_web_ui_line())
    else:
        print(f"A broker that is not this project's answers on localhost:{PORT}; using it "
              "as it is")
        print(others_web_ui_line())


def not_running(node):
    stale = (f" (removed a stale pid file: process {node.stale_pid} is not this node)"
             if node.stale_pid else "")
    print(f"RabbitMQ (this project's) is not running{stale}")


def stop():
    node = our_node()
    if not node.is_running():
        not_running(node)
        return
    node.stop()
    print("RabbitMQ (this project's) stopped")
    forget_epmd()


def remember_epmd():
    """Our node starts Erlang's port mapper (epmd) unless one runs: remember if it did."""
    EPMD_MARK.parent.mkdir(parents=True, exist_ok=True)
    if not epmd_running():
        EPMD_MARK.touch()


def forget_epmd():
    """Stop the epmd our node started, once no Erlang node uses it."""
    if EPMD_MARK.exists() and not epmd_names():
        stop_epmd()
        EPMD_MARK.unlink()


def crash():
    node = our_node()
    if not node.is_running():
        not_running(node)
        return 1
    node.kill()
    print("RabbitMQ (this project's) killed with SIGKILL; start it again with: "
          "python3 broker/local.py start")


def status():
    if our_node().is_running():
        print(f"RabbitMQ (this project's) is running on 127.0.0.1:{PORT}; stop it with: "
              "python3 broker/local.py stop")
    elif any(member.is_running() for member in our_cluster().nodes):
        print(f"This project's cluster is running (ports {PORT}-{PORT + 2}); stop it with: "
              "python3 broker/local.py cluster stop")
    elif answers_amqp(PORT) and system_node():
        print(f"The system's RabbitMQ ({system_node()}) is running on localhost:{PORT}, as "
              f"before; stop it with: {stop_system_line()}")
    elif answers_amqp(PORT):
        container = docker_container()
        where = (f"docker stop {container}" if container
                 else "where it was started (Docker: docker stop CONTAINER)")
        print(f"A broker that is not this project's answers on localhost:{PORT}, as before; "
              f"stop it {'with: ' if container else ''}{where}")
    else:
        print(f"No broker answers on localhost:{PORT}; start one with: "
              "python3 broker/local.py start")
        return 1
    return 0


def cluster(args):
    members = our_cluster()
    if args == ["start"]:
        if our_node().is_running():
            raise BrokerError("stop the single local node first: python3 broker/local.py stop")
        ensure_installed()
        print(f"Starting a 3-node RabbitMQ cluster on 127.0.0.1:{PORT}-{PORT + 2} "
              "(data in .broker/cluster/) ...", flush=True)
        remember_epmd()
        members.start(detached=True)
        print("Cluster ready: " + ", ".join(f"{n.name} on {n.port}" for n in members.nodes))
    elif args == ["stop"]:
        members.stop()
        print("Cluster stopped")
        forget_epmd()
    elif len(args) == 2 and args[0] == "crash" and args[1] in ("1", "2", "3"):
        member = members.nodes[int(args[1]) - 1]
        member.kill()
        print(f"{member.name} killed with SIGKILL; bring it back with: "
              "python3 broker/local.py cluster start")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


def rabbitmqctl(args):
    running = running_nodes()
    node = running[0] if running else None
    if node is None and answers_amqp(PORT) and system_node():
        return system_rabbitmqctl(args)
    if node is None:
        where = (f"the broker on localhost:{PORT} is another one; type: "
                 + others_rabbitmqctl(args)
                 if answers_amqp(PORT) else "start it with: python3 broker/local.py start")
        print(f"rabbitmqctl: this project's RabbitMQ is not running; {where}", file=sys.stderr)
        return 1
    return node.ctl(*args, check=False, capture=False, timeout=None).returncode


def system_rabbitmqctl(args):
    """Debian's own rabbitmqctl reaches the system's node (as root it switches to the
    rabbitmq user and its cookie; others go through sudo)."""
    command = ["rabbitmqctl", *args] if os.geteuid() == 0 else ["sudo", "rabbitmqctl", *args]
    if os.geteuid() == 0 and not shutil.which("rabbitmqctl"):
        command[0] = "/usr/sbin/rabbitmqctl"
    print(f"(the system's RabbitMQ, node {system_node()}: {sudo('rabbitmqctl', *args)})",
          file=sys.stderr, flush=True)
    try:
        return subprocess.run(command).returncode
    except OSError as error:
        print(f"rabbitmqctl: cannot run {command[0]}: {error.strerror}", file=sys.stderr)
        return 1


def main(argv):
    commands = {"start": start, "stop": stop, "crash": crash, "status": status}
    try:
        if argv[:1] == ["rabbitmqctl"]:
            return rabbitmqctl(argv[1:])
        if argv[:1] == ["cluster"]:
            return cluster(argv[1:])
        if len(argv) == 1 and argv[0] in commands:
            return commands[argv[0]]() or 0
    except (BrokerError, subprocess.CalledProcessError) as error:
        print(f"local.py: {error}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
