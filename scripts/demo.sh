#!/usr/bin/env bash
# Sets everything up and runs the blog's Hello World end to end:
# .venv with pika, a local RabbitMQ (broker/local.py), send, list_queues, receive.
# A broker that already answers on localhost:5672 is used as it is, never stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

need_venv requirements.txt
python3 broker/local.py start

run() { echo "\$ $*"; "$@"; }
echo
echo "\$ python send.py"
.venv/bin/python send.py
run broker/rabbitmqctl list_queues || true  # on a broker of another kind: what to type instead
echo "\$ python receive.py --count 1      # without --count it waits for more until Ctrl+C"
.venv/bin/python receive.py --count 1
echo
python3 broker/local.py status  # what keeps running, and how to stop it
