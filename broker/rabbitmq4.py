"""RabbitMQ 4.x on a Debian 12 machine: a Debian 13 root used with chroot.

Debian 13 ships rabbitmq-server 4.0.5, which cannot be installed on Debian 12
directly. As root we debootstrap a minimal Debian 13 root once (about 35 s and
450 MB), cache it outside the project, and run nodes inside it with chroot
(see node.Node(root=...)); they listen on the host's loopback like any other.

    python3 broker/rabbitmq4.py prepare    # build or reuse the cached root

Standard library only.
"""
import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("RABBITMQ4_ROOT_CACHE", "/var/cache/hello-rabbitmq"))
ROOT = CACHE / "trixie-root"
READY_MARK = ROOT / "usr/lib/rabbitmq/bin/rabbitmq-server"
# 4.3's default, which 4.0.5 only applies when asked to.
REFUSE_TRANSIENT_QUEUES = "deprecated_features.permit.transient_nonexcl_queues = false"


def why_unavailable():
    """None if this machine can run the 4.x root, else a one-line reason."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return "the RabbitMQ 4.x lane needs root (debootstrap and chroot)"
    if not READY_MARK.exists() and not (shutil.which("debootstrap") or shutil.which("apt-get")):
        return "the RabbitMQ 4.x lane needs debootstrap (Debian's package)"
    return None


def debian_mirror():
    """The Debian mirror this machine already uses."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if source.exists():
            match = re.search(r"^(?:URIs:|deb)\s+(https?://\S+/debian)/?\s", source.read_text(),
                              re.MULTILINE)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def run(*command):
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def prepare():
    """Build the Debian 13 root with rabbitmq-server, unless it is cached."""
    if READY_MARK.exists():
        return ROOT
    if not shutil.which("debootstrap"):
        run("apt-get", "update", "-q")
        run("apt-get", "install", "-y", "-q", "debootstrap")
    partial = CACHE / "trixie-root.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    run("debootstrap", "--variant=minbase", "trixie", str(partial), debian_mirror())
    policy = partial / "usr/sbin/policy-rc.d"  # never start services in the root
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    with mounted(partial):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["chroot", str(partial), "apt-get", "install", "-y", "-q",
                        "--no-install-recommends", "rabbitmq-server"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
    partial.rename(ROOT)
    return ROOT


@contextlib.contextmanager
def mounted(root=ROOT):
    """/proc and /dev inside the root while nodes run there."""
    root = Path(root)
    done = []
    try:
        for target, command in [(root / "proc", ["mount", "-t", "proc", "proc"]),
                                (root / "dev", ["mount", "--bind", "/dev"])]:
            if not os.path.ismount(target):
                run(*command, str(target))
                done.append(target)
        yield root
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "--lazy", str(target)], check=False)


if __name__ == "__main__":
    if sys.argv[1:] != ["prepare"]:
        sys.exit(__doc__)
    reason = why_unavailable()
    if reason:
        sys.exit(f"rabbitmq4.py: {reason}")
    try:
        print(f"RabbitMQ 4.x root ready in {prepare()}")
    except subprocess.CalledProcessError as error:
        sys.exit(f"rabbitmq4.py: {' '.join(error.cmd)} failed (exit status {error.returncode})")
