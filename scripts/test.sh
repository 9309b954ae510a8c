#!/usr/bin/env bash
# Runs the whole test suite against throwaway RabbitMQ nodes that it starts and
# stops itself (never a broker on 5672). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

need_packages rabbitmq-server amqp-tools
need_venv tests/requirements.txt
exec .venv/bin/python -m pytest -rs tests "$@"
