"""A local RabbitMQ for trying the scripts: start, stop, status, rabbitmqctl.

    python3 broker/local.py start     # reuse a broker on localhost:5672, or start ours
    python3 broker/local.py stop      # stop ours (never someone else's)
    python3 broker/local.py crash     # kill -9 ours: a crash, for the persistence demo
    python3 broker/local.py status
    broker/rabbitmqctl list_queues    # the blog's command, for our node

    python3 broker/local.py cluster start    # a 3-node cluster on ports 5672, 5673, 5674
    python3 broker/local.py cluster crash N  # kill -9 node N (1-3), to try failover
    python3 broker/local.py cluster stop

Our node is Debian's rabbitmq-server (installed with apt-get if missing,
through sudo when not root), listening on 127.0.0.1:5672 only, with all its
data in .broker/ of this project (git-ignored), and the web UI (the management
plugin) on 127.0.0.1:15672 only. Running start twice is fine.
Standard library only.
"""
import os
import shutil
import subprocess
import sys
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
    if answers_amqp(PORT):
        print(f"A broker already answers on localhost:{PORT}; using it (it is not this "
              "project's, so use its own rabbitmqctl)")
        return
    ensure_installed()
    if answers_amqp(PORT):  # some packages start a system service on install
        print(f"The system's RabbitMQ service answers on localhost:{PORT}; using it")
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
        print(f"RabbitMQ (this project's) is running on 127.0.0.1:{PORT}")
    elif answers_amqp(PORT):
        print(f"A broker that is not this project's answers on localhost:{PORT}")
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
    if node is None:
        where = ("the broker on localhost:5672 is not this project's: use its own rabbitmqctl "
                 "(for Docker: docker exec CONTAINER rabbitmqctl ...)"
                 if answers_amqp(PORT) else "start it with: python3 broker/local.py start")
        print(f"rabbitmqctl: this project's RabbitMQ is not running; {where}", file=sys.stderr)
        return 1
    return node.ctl(*args, check=False, capture=False, timeout=None).returncode


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
