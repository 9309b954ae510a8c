"""The Hello World tests under every Python from 3.9 to 3.13 found on this machine.

    .venv/bin/nox -f tests/noxfile.py     # scripts/test.sh runs it after the suite

Each version gets its own virtual environment with tests/requirements.txt (so a
change that needs a newer Python, or another pika, fails here) and runs
tests/test_hello_world.py against Debian 12's RabbitMQ. A version that is not
installed is skipped with the reason; under CI (CI=true) that is a failure.
"""
import glob
import os
import shutil
from pathlib import Path

import nox

PROJECT = Path(__file__).resolve().parent.parent
VERSIONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]
nox.options.envdir = str(PROJECT / ".nox")
nox.options.error_on_missing_interpreters = False


def interpreter(version):
    """pythonX.Y on PATH, else pyenv's (its shims answer only for the selected version)."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(f"{pyenv}/versions/{version}.*/bin/python{version}"))
    return found[-1] if found else shutil.which(f"python{version}")


@nox.session(python=False)
@nox.parametrize("version", VERSIONS)
def hello_world(session, version):
    python = interpreter(version)
    if python is None:
        missing = session.error if os.environ.get("CI") == "true" else session.skip
        missing(f"Python {version} is not installed here")
    venv = PROJECT / ".nox" / f"py{version}"
    if not (venv / "bin" / "python").exists():
        session.run(python, "-m", "venv", str(venv), external=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    session.run(*pip, "-r", str(PROJECT / "tests" / "requirements.txt"), external=True)
    session.run(str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--lane", "rabbitmq3.10", str(PROJECT / "tests" / "test_hello_world.py"),
                external=True)
