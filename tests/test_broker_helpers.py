"""The broker helpers run as root on users' and developers' machines: they signal only
their own node and never delete through a mount point."""
import os
import shutil
import subprocess
import sys

import pytest

import rabbitmq4
from helpers import PROJECT, TIMEOUT, cannot_run
from node import BrokerError, in_root, mounts_under, remove_tree, wait_until


@pytest.fixture
def root_rights():
    if os.geteuid() != 0:
        cannot_run("mounting needs root")


@pytest.fixture
def project_copy(tmp_path):
    """broker/ in a project of its own, so its .broker/ is not the user's."""
    shutil.copytree(PROJECT / "broker", tmp_path / "broker")
    return tmp_path


@pytest.mark.parametrize("command", ["crash", "stop"])
def test_a_stale_pid_file_never_gets_another_process_signalled(project_copy, command):
    bystander = subprocess.Popen(["sleep", "600"])
    pid_file = project_copy / ".broker" / "mnesia" / "hello@localhost.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(str(bystander.pid))
    try:
        result = subprocess.run([sys.executable, project_copy / "broker" / "local.py", command],
                                capture_output=True, text=True, timeout=TIMEOUT)

        assert bystander.poll() is None, "local.py signalled a process that is not its node"
        assert result.stdout == ("RabbitMQ (this project's) is not running (removed a stale pid "
                                 f"file: process {bystander.pid} is not this node)\n")
        assert result.returncode == (1 if command == "crash" else 0)
        assert not pid_file.exists()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_left_over_build_is_not_deleted_through_a_mount(root_rights, tmp_path):
    """A build killed inside the chroot once left the host's /dev bound in it."""
    host_dir = tmp_path / "host-dev"
    host_dir.mkdir()
    (host_dir / "keep").write_text("the host's file")
    partial = tmp_path / "cache" / "trixie-root.partial"
    (partial / "dev").mkdir(parents=True)
    subprocess.run(["mount", "--bind", host_dir, partial / "dev"], check=True)
    try:
        result = subprocess.run(
            [sys.executable, PROJECT / "broker" / "rabbitmq4.py", "prepare", "4.0"],
            env=dict(os.environ, RABBITMQ4_ROOT_CACHE=str(tmp_path / "cache")),
            capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        subprocess.run(["umount", partial / "dev"], check=True)

    assert (host_dir / "keep").read_text() == "the host's file"
    assert result.returncode == 1
    assert result.stderr == (f"rabbitmq4.py: not removing {partial}: {partial}/dev is mounted "
                             f"inside it (unmount it first: umount -R {partial}/dev)\n")


def test_remove_tree_removes_a_tree_and_refuses_one_with_a_mount_inside(root_rights, tmp_path):
    (tmp_path / "plain" / "dev").mkdir(parents=True)
    (tmp_path / "mounted" / "dev").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", tmp_path / "mounted" / "dev"], check=True)
    try:
        (tmp_path / "mounted" / "dev" / "keep").write_text("kept")

        remove_tree(tmp_path / "plain")
        with pytest.raises(BrokerError, match="is mounted inside it"):
            remove_tree(tmp_path / "mounted")

        assert (tmp_path / "mounted" / "dev" / "keep").read_text() == "kept"
    finally:
        subprocess.run(["umount", tmp_path / "mounted" / "dev"], check=True)
    assert not (tmp_path / "plain").exists()


def test_mounts_in_a_root_are_never_the_hosts_and_end_with_a_killed_process(root_rights):
    if rabbitmq4.why_unavailable("4.0"):
        cannot_run(rabbitmq4.why_unavailable("4.0"))
    root = rabbitmq4.prepare("4.0")
    process = subprocess.Popen(in_root(root, "sleep", "600"))
    try:
        # Through the process's own view of the root: /proc is mounted there...
        wait_until(lambda: os.path.exists(f"/proc/{process.pid}/root/proc/1"), TIMEOUT,
                   "/proc mounted in the root")
        assert os.path.exists(f"/proc/{process.pid}/root/dev/null")
        # ...and the host sees no mount in the root.
        assert mounts_under(root) == []
        assert not os.path.exists(root / "proc" / "1")
    finally:
        process.kill()  # SIGKILL: no chance to unmount anything
        process.wait()
    assert mounts_under(root) == []
