#!/usr/bin/env bash
# Sets everything up and runs the blog's Hello World end to end:
# .venv with pika, a local RabbitMQ (broker/local.py), send, list_queues, receive.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

need_venv requirements.txt
python3 broker/local.py start

run() { echo "\$ $*"; "$@"; }
echo
echo "\$ python send.py"
.venv/bin/python send.py
run broker/rabbitmqctl list_queues || echo "(list_queues needs this project's broker; see docs/broker.md)"
echo "\$ python receive.py --count 1      # without --count it waits for more until Ctrl+C"
.venv/bin/python receive.py --count 1
echo
echo "The local RabbitMQ keeps running; stop it with: python3 broker/local.py stop"
