"""The test harness says what it tested: each lane runs the RabbitMQ it is named after, a
lane (or a Python version for nox) that cannot run fails under CI, a hang fails its own
test, a failed test leaves no queue behind; and installing a broker says what Debian does
with it."""
import os
import shutil
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

import local
from helpers import LANES, PROJECT, TIMEOUT, cannot_run, installed_version, stray_lines


def pytest_run(*args, env=None, cwd=PROJECT):
    """pytest in a process of its own, with the project's settings; (exit status, output)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c",
         str(PROJECT / "pyproject.toml"), "--rootdir", str(cwd), *map(str, args)],
        cwd=cwd, env={**(env or os.environ), "COLUMNS": "200"}, capture_output=True,
        text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def env_without_ci(**extra):
    return {**{k: v for k, v in os.environ.items() if k != "CI"}, **extra}


def fake_root(path, version):
    """A root that looks built, whose dpkg database says rabbitmq-server is that version."""
    (path / "usr/lib/rabbitmq/bin").mkdir(parents=True)
    (path / "usr/lib/rabbitmq/bin/rabbitmq-server").touch()
    (path / "var/lib/dpkg").mkdir(parents=True)
    (path / "var/lib/dpkg/status").write_text(
        f"Package: rabbitmq-server\nStatus: install ok installed\nVersion: {version}\n"
        "Architecture: all\nMaintainer: nobody\nDescription: a fake\n")
    return path


# -- lanes that are what they say ------------------------------------------------

@pytest.mark.parametrize("name,found", [("rabbitmq4.3", "4.2.1"), ("rabbitmq3.10", "3.1.5"),
                                        ("rabbitmq4.0", "4.3.6"), ("rabbitmq3.10", None)])
def test_a_lane_that_runs_another_version_says_which(name, found):
    reason = LANES[name].wrong_version(found)

    assert reason.startswith(f"the RabbitMQ {LANES[name].version} lane ")
    assert (f"runs RabbitMQ {found}, not {LANES[name].version}.x" if found else
            "finds no rabbitmq-server installed") in reason


@pytest.mark.parametrize("name,found", [("rabbitmq3.10", "3.10.8"), ("rabbitmq4.0", "4.0.5"),
                                        ("rabbitmq4.3", "4.3.12")])
def test_a_lane_that_runs_its_version_is_fine(name, found):
    assert LANES[name].wrong_version(found) is None


@pytest.mark.parametrize("package,upstream", [("4.2.0-1", "4.2.0"), ("1:4.3.6-1", "4.3.6"),
                                              ("3.10.8-1.1+deb12u1", "3.10.8")])
def test_the_version_is_read_from_the_roots_dpkg_database(tmp_path, package, upstream):
    assert installed_version(fake_root(tmp_path, package)) == upstream
    assert installed_version(tmp_path / "nothing-here") is None


def test_a_lane_whose_root_holds_another_version_fails_naming_it(tmp_path):
    if os.geteuid() != 0:
        cannot_run("the 4.3 lane needs root")
    fake_root(tmp_path / "sid-root", "4.2.0-1")

    status, output = pytest_run(
        "--lane", "rabbitmq4.3", "tests/test_hello_world.py::test_send_leaves_one_message_in_hello",
        env=env_without_ci(RABBITMQ4_ROOT_CACHE=str(tmp_path)))

    assert status == 1, output
    assert "1 error" in output
    assert f"the RabbitMQ 4.3 lane runs RabbitMQ 4.2.0, not 4.3.x (in {tmp_path}/sid-root)" \
        in output


@pytest.mark.parametrize("ci", [False, True], ids=["locally", "under CI"])
def test_a_lane_that_cannot_run_is_skipped_locally_and_fails_under_ci(ci):
    """Without root (a user namespace of its own: this process is not root there) the 4.x
    lanes cannot run: a CI that skipped them would pass having tested 3.10 alone."""
    if not shutil.which("unshare"):
        cannot_run("needs unshare (util-linux)")
    env = env_without_ci(**({"CI": "true"} if ci else {}))
    test = "tests/test_hello_world.py::test_send_leaves_one_message_in_hello"

    result = subprocess.run(
        ["unshare", "--user", sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--lane", "rabbitmq4.0", test], cwd=PROJECT, env=env, capture_output=True, text=True,
        timeout=120)

    output = result.stdout + result.stderr
    reason = "the RabbitMQ 4.0 lane needs root (debootstrap and chroot)"
    assert reason in output
    if ci:
        assert result.returncode == 1, output
        assert f"cannot run under CI: {reason}" in output and "1 error" in output
    else:
        assert result.returncode == 0, output
        assert "1 skipped" in output


@pytest.mark.parametrize("ci", [False, True], ids=["locally", "under CI"])
def test_a_python_version_that_is_missing_is_skipped_locally_and_fails_under_ci(ci):
    path = "/usr/bin:/bin"  # no pyenv: Debian 12 itself has Python 3.11 only
    if shutil.which("python3.9", path=path):
        cannot_run("python3.9 is installed in /usr/bin")
    env = {"PATH": path, "PYENV_ROOT": "/nonexistent", **({"CI": "true"} if ci else {})}

    result = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(PROJECT / "tests/noxfile.py"), "-s",
         "hello_world(version='3.9')"], env=env, capture_output=True, text=True,
        timeout=TIMEOUT)

    assert ("aborted" if ci else "skipped") + ": Python 3.9 is not installed here" \
        in result.stderr
    assert result.returncode == (1 if ci else 0), result.stderr


# -- a bounded suite -------------------------------------------------------------

def test_a_test_that_hangs_fails_by_name_and_the_run_goes_on(tmp_path):
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""\
        import time
        import pytest

        @pytest.mark.timeout(1)
        def test_that_hangs():
            time.sleep(60)

        def test_after_it():
            pass
        """))

    status, output = pytest_run(tmp_path / "test_hang.py", cwd=tmp_path)

    assert status == 1, output
    assert "timeout: 300.0s" in output  # the project's limit for every other test
    assert "FAILED test_hang.py::test_that_hangs - Failed: Timeout (>1.0s) from pytest-timeout" \
        in output
    assert "1 failed, 1 passed" in output


def test_the_check_for_no_connection_sees_a_script_that_connects(no_broker):
    """What test_faults.py asserts of usage errors (no connection made) can fail."""
    assert no_broker.connections() == 0

    no_broker.send("--url", no_broker.url + "?stack_timeout=1&socket_timeout=1",
                   "--timeout", "1")

    assert no_broker.connections() >= 1


def test_the_check_for_a_quiet_success_sees_a_stray_line():
    """What no_errors() and test_faults.check() accept of a run that exit 0: notes the test
    names, and on a lane that refuses non-durable queues, the notes about it; nothing else."""
    def run(lane, *lines):
        return SimpleNamespace(lane=LANES[lane], stderr_lines=list(lines))
    durable = "send.py: note: this RabbitMQ refuses non-durable queues; declaring 'hello' durable"
    met = ("receive.py: note: queue 'hello' already exists with other settings (durable is "
           "'true'); using it as it is")

    assert stray_lines(run("rabbitmq4.0", durable, met)) == []
    assert stray_lines(run("rabbitmq3.10", durable)) == [durable]
    for lane in LANES:
        assert stray_lines(run(lane, "send.py: connected")) == ["send.py: connected"]
        assert stray_lines(run(lane, "receive.py: note: reconnected")) == [
            "receive.py: note: reconnected"]
        assert stray_lines(run(lane, "receive.py: note: reconnected"), "reconnected") == []
        assert stray_lines(run(lane, "receive.py: error: reconnected"), "reconnected") == [
            "receive.py: error: reconnected"]


def test_a_failed_test_leaves_no_queue_for_the_next_one(tmp_path):
    """A queue that a failing test made, under a name no script was given, is gone."""
    (tmp_path / "test_queues.py").write_text(textwrap.dedent("""\
        def test_fails_after_making_queues(broker):
            broker.channel().queue_declare("made-on-the-side", durable=True)
            assert broker.send("--queue", "named", "x").returncode == 0
            assert False, "failing on purpose"

        def test_next(broker):
            assert broker.message_count("made-on-the-side") is None
            assert broker.message_count("named") is None

        def test_passes_after_naming_a_queue(broker):
            assert broker.send("--queue", "named-too", "x").returncode == 0

        def test_last(broker):
            assert broker.message_count("named-too") is None
        """))

    status, output = pytest_run("-p", "conftest", "--lane", "rabbitmq3.10",
                                tmp_path / "test_queues.py", cwd=tmp_path,
                                env=env_without_ci())

    assert status == 1, output
    assert "failing on purpose" in output
    assert "1 failed, 3 passed" in output


# -- installing says what Debian does --------------------------------------------

SERVICE = ("on a machine with systemd, Debian starts {}as a system service, enabled at boot "
           "and listening on all interfaces (to stop and disable it: {}systemctl disable "
           "--now rabbitmq-server)")


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """apt-get, dpkg and sudo that only note what they were asked (nothing is installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [("apt-get", 'echo "apt-get $*" >> "$0.log"'), ("dpkg", "exit 1"),
                       ("sudo", 'exec "$@"')]:
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_local_py_says_debian_starts_a_service_when_it_installs(fake_apt, monkeypatch, capsys):
    monkeypatch.setattr(local, "RABBITMQ_BIN", str(fake_apt / "no-rabbitmq-here"))

    local.ensure_installed()

    sudo = "" if os.geteuid() == 0 else "sudo "
    assert capsys.readouterr().out == ("Installing RabbitMQ (Debian's rabbitmq-server); "
                                       + SERVICE.format("it ", sudo) + " ...\n")
    assert (fake_apt / "apt-get.log").read_text().splitlines()[-1] == \
        "apt-get install -y -q rabbitmq-server"


def test_setup_sh_says_debian_starts_a_service_when_it_installs_rabbitmq(fake_apt):
    def need(*packages):
        return subprocess.run(["bash", "-c", 'source scripts/setup.sh && need_packages "$@"',
                               "need", *packages], cwd=PROJECT, capture_output=True, text=True,
                              timeout=TIMEOUT, check=True).stdout

    sudo = "" if os.geteuid() == 0 else "sudo "
    assert need("rabbitmq-server", "amqp-tools") == (
        "Installing rabbitmq-server amqp-tools (Debian packages); "
        + SERVICE.format("rabbitmq-server ", sudo) + " ...\n")
    assert need("amqp-tools") == "Installing amqp-tools (Debian packages) ...\n"
