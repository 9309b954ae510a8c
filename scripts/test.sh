#!/usr/bin/env bash
# Runs ruff, then the whole test suite against throwaway RabbitMQ nodes that it
# starts and stops itself (never a broker on 5672), on every lane, then the Hello
# World tests under every Python 3.9-3.13 found here. Installs what is missing first.
# A lane that cannot run here is skipped with the reason; under CI (CI=true) it fails.
# Each test has 300 s (pyproject.toml); one that hangs fails by name and the run goes on.
# Arguments go to pytest (a quick run, without the Python versions):
#   bash scripts/test.sh --lane rabbitmq4.3 -k timeout
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

need_packages rabbitmq-server amqp-tools
need_venv tests/requirements.txt
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
if [ $# -eq 0 ]; then
    .venv/bin/nox -f tests/noxfile.py
fi
