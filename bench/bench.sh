#!/usr/bin/env bash
# The benchmark: starts its own throwaway RabbitMQ, prints figures (bench/bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

need_packages rabbitmq-server amqp-tools
need_venv requirements.txt
PYTHONPATH=broker exec .venv/bin/python bench/bench.py "$@"
