"""scripts/demo.sh in a fresh clone, on a machine where Debian's system RabbitMQ already
runs (what apt-get leaves on every machine with systemd): the README's steps with `hello 1`,
a true web UI line, a true closing line, and the system's node left as it was.

The test starts that node as Debian's service does (user rabbitmq, /var/lib/rabbitmq,
node rabbit@HOSTNAME, port 5672; on loopback only) and stops it afterwards. It never
touches a RabbitMQ the user runs: where 5672 (or 25672, 15672) is taken, or the system's
node already runs, it does not run (skipped; a failure under CI=true).
"""
import base64
import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from helpers import PROJECT, cannot_run
from node import (
    answers_amqp,
    epmd_names,
    epmd_running,
    port_is_free,
    port_is_open,
    process_exists,
    stop_epmd,
    wait_until,
)

HOME = Path("/var/lib/rabbitmq")  # the rabbitmq user's home: data and Erlang cookie
LOGS = Path("/var/log/rabbitmq")
NODE = "rabbit@" + socket.gethostname().split(".")[0]
PID_FILE = HOME / "mnesia" / f"{NODE}.pid"
BOOT = 90  # seconds for the node to start or stop
SUDO = "" if os.geteuid() == 0 else "sudo "


def why_not_here(web):
    if os.geteuid() != 0:
        return "starting a node as Debian's service does needs root"
    if not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or not HOME.is_dir():
        return "Debian's rabbitmq-server is not installed (scripts/test.sh installs it)"
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return "there is no rabbitmq user (Debian's rabbitmq-server makes it)"
    if "rabbit" in epmd_names() or (PID_FILE.exists() and process_exists(
            int(PID_FILE.read_text().strip() or 0))):
        return f"the system's RabbitMQ ({NODE}) already runs here; this test leaves it alone"
    for port in (5672, 25672) + ((15672,) if web else ()):
        if port_is_open(port) or not port_is_free(port):
            return f"port {port} is taken by something this test did not start"
    return None


def entries():
    """What the node may add to the system's RabbitMQ directories."""
    return {path for top in (HOME, HOME / "mnesia", LOGS) if top.is_dir()
            for path in top.iterdir()}


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    """A clone of the committed tree: what a learner gets with git clone."""
    path = tmp_path_factory.mktemp("clone") / "hello-rabbitmq"
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(path)], check=True)
    return path


@pytest.fixture(params=[False, True], ids=["web-ui-off", "web-ui-on"])
def system_rabbitmq(request):
    """Debian's system node, started as its service starts it; with the management plugin
    in the web-ui-on case (enabled on this node only, listening on loopback)."""
    web = request.param
    reason = why_not_here(web)
    if reason:
        cannot_run(reason)
    before, epmd_before = entries(), epmd_running()
    settings = Path(tempfile.mkdtemp(prefix="system-rabbitmq-"))
    settings.chmod(0o755)  # read by the rabbitmq user
    (settings / "enabled_plugins").write_text("[rabbitmq_management]." if web else "[].")
    (settings / "rabbitmq.conf").write_text("management.tcp.ip = 127.0.0.1\n" if web else "")
    env = {
        "HOME": str(HOME),
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(settings / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(settings / "rabbitmq"),
    }
    server = " ".join([f"cd {HOME} && exec env"] + [f"{k}={shlex.quote(v)}" for k, v in env.items()]
                      + ["/usr/lib/rabbitmq/bin/rabbitmq-server", "-detached"])
    try:
        subprocess.run(["su", "rabbitmq", "-s", "/bin/sh", "-c", server], check=True,
                       timeout=BOOT)
        wait_until(lambda: answers_amqp(5672) and (not web or port_is_open(15672)), BOOT,
                   f"the system's node {NODE} to answer")
        yield web
    finally:
        stop_system_node()
        for path in entries() - before:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        shutil.rmtree(settings)
        if not epmd_before and not epmd_names():
            stop_epmd()


def stop_system_node():
    pid = int(PID_FILE.read_text().strip()) if PID_FILE.exists() else None
    if pid is None or not process_exists(pid):
        return
    subprocess.run(["/usr/sbin/rabbitmqctl", "stop"], capture_output=True, timeout=BOOT)
    try:
        wait_until(lambda: not process_exists(pid), BOOT, f"{NODE} to stop")
    except Exception:
        os.kill(pid, 9)  # the pid file names the node's Erlang VM, which this test started
        wait_until(lambda: not process_exists(pid), BOOT, f"{NODE} to die")


def readme_steps():
    """The README's sample output between its first and last blank line: the commands and
    what they print, the same whichever broker runs."""
    text = (PROJECT / "README.md").read_text()
    block = text.split("The first one prints, after the setup lines:\n\n```\n")[1].split("```")[0]
    lines = block.splitlines()
    blanks = [n for n, line in enumerate(lines) if not line]
    return lines[blanks[0] + 1:blanks[-1]]


def in_order(wanted, lines):
    """True when the wanted lines appear among lines in that order."""
    rest = iter(lines)
    return all(any(line == want for line in rest) for want in wanted)


def web_api(path):
    request = urllib.request.Request(f"http://127.0.0.1:15672{path}", headers={
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_demo_uses_the_systems_rabbitmq_the_whole_way(fresh_clone, system_rabbitmq):
    web = system_rabbitmq
    pid = PID_FILE.read_text().strip()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}

    demo = subprocess.run(["bash", "scripts/demo.sh"], cwd=fresh_clone, env=env, text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600)
    lines = demo.stdout.splitlines()

    assert demo.returncode == 0, demo.stdout
    # The README's steps, the blog's check included: hello 1 on the system's node.
    assert "hello\t1" in readme_steps()
    assert in_order(readme_steps(), lines), demo.stdout
    assert (f"(the system's RabbitMQ, node {NODE}: {SUDO}rabbitmqctl list_queues)"
            in lines), demo.stdout
    # It says which broker it uses, and the web UI line tells the truth.
    assert (f"The system's RabbitMQ (Debian's service, node {NODE}) answers on "
            "localhost:5672; using it as it is") in lines, demo.stdout
    if web:
        assert ("Web UI: http://localhost:15672 (user guest, password guest; from this "
                "machine only)") in lines, demo.stdout
        assert web_api("/api/queues/%2F/hello")["name"] == "hello"
    else:
        assert ("Web UI: off on the system's RabbitMQ; to turn it on (on every network "
                f"interface): {SUDO}rabbitmq-plugins enable rabbitmq_management"
                ) in lines, demo.stdout
        assert not port_is_open(15672), "the demo turned the web UI on unasked"
    # The closing line names what stops what runs; the demo stopped nothing.
    stop = ("systemctl stop rabbitmq-server" if Path("/run/systemd/system").is_dir()
            else "rabbitmqctl stop")
    assert lines[-1] == (f"The system's RabbitMQ ({NODE}) is running on localhost:5672, as "
                         f"before; stop it with: {SUDO}{stop}"), demo.stdout
    assert PID_FILE.read_text().strip() == pid and process_exists(int(pid))
    assert answers_amqp(5672)
    assert not (fresh_clone / ".broker" / "mnesia").exists(), "the demo started a node of its own"
