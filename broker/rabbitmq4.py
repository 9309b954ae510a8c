"""RabbitMQ 4.x on a Debian 12 machine: newer Debian roots used with chroot.

Debian 13 (trixie) ships rabbitmq-server 4.0.5 and Debian's development suite
(sid) 4.3.6; neither installs on Debian 12 directly. As root we debootstrap a
minimal root of that suite once (about 35 s and 450 MB each), cache it outside
the project, and run nodes inside it with chroot, /proc and /dev mounted in a
private mount namespace (node.in_root); they listen on the host's loopback.

    python3 broker/rabbitmq4.py prepare 4.0    # build or reuse the cached root
    python3 broker/rabbitmq4.py prepare 4.3

Standard library only.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from node import BrokerError, in_root, remove_tree

CACHE = Path(os.environ.get("RABBITMQ4_ROOT_CACHE", "/var/cache/hello-rabbitmq"))
SUITES = {"4.0": "trixie", "4.3": "sid"}  # RabbitMQ version: the Debian suite that ships it
# 4.3's upstream default (Debian's 4.3.6 still permits them), which 4.0.5 applies when asked.
REFUSE_TRANSIENT_QUEUES = "deprecated_features.permit.transient_nonexcl_queues = false"


def root_of(version):
    return CACHE / f"{SUITES[version]}-root"


def is_ready(version):
    return (root_of(version) / "usr/lib/rabbitmq/bin/rabbitmq-server").exists()


def why_unavailable(version):
    """None if this machine can run the root of that version, else a one-line reason."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return f"the RabbitMQ {version} lane needs root (debootstrap and chroot)"
    if not is_ready(version) and not (shutil.which("debootstrap") or shutil.which("apt-get")):
        return f"the RabbitMQ {version} lane needs debootstrap (Debian's package)"
    return None


def debian_mirror():
    """The Debian mirror this machine already uses, as a list of debootstrap's last
    argument: empty when its sources name none, and debootstrap then uses its default."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if source.exists():
            match = re.search(r"^(?:URIs:|deb)\s+(https?://\S+/debian)/?\s", source.read_text(),
                              re.MULTILINE)
            if match:
                return [match.group(1)]
    return []


def run(*command, **kwargs):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kwargs)


def prepare(version):
    """Build the root with that version's rabbitmq-server, unless it is cached."""
    root = root_of(version)
    if is_ready(version):
        return root
    if not shutil.which("debootstrap"):
        run("apt-get", "update", "-q")
        run("apt-get", "install", "-y", "-q", "debootstrap")
    partial = root.with_name(root.name + ".partial")
    remove_tree(partial)  # what a killed build left; refused if anything is mounted in it
    partial.mkdir(parents=True)
    run("debootstrap", "--variant=minbase", SUITES[version], str(partial), *debian_mirror())
    policy = partial / "usr/sbin/policy-rc.d"  # never start services in the root
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # A minbase root has no /etc/hosts: Erlang then cannot resolve localhost (nxdomain).
    shutil.copy("/etc/hosts", partial / "etc/hosts")
    run(*in_root(partial, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                 "rabbitmq-server"), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    partial.rename(root)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "prepare" or sys.argv[2] not in SUITES:
        sys.exit(__doc__)
    reason = why_unavailable(sys.argv[2])
    if reason:
        sys.exit(f"rabbitmq4.py: {reason}")
    try:
        print(f"RabbitMQ {sys.argv[2]} root ready in {prepare(sys.argv[2])}")
    except BrokerError as error:
        sys.exit(f"rabbitmq4.py: {error}")
    except subprocess.CalledProcessError as error:
        sys.exit(f"rabbitmq4.py: {' '.join(error.cmd)} failed (exit status {error.returncode})")
