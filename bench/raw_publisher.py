"""A bare pika publisher: each line of stdin one message, as `send.py -` sends them.

Usage: raw_publisher.py URL QUEUE confirm|tx [durable]
confirm: a publisher confirm awaited per message (send.py's guarantee);
tx: a transaction committed every 500 messages (a batch is all or unknown).
"""
import sys

import pika

url, queue, mode = sys.argv[1:4]
durable = "durable" in sys.argv[4:]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=durable)
properties = pika.BasicProperties(delivery_mode=2) if durable else None
if mode == "confirm":
    channel.confirm_delivery()
else:
    channel.tx_select()
for number, line in enumerate(sys.stdin.buffer, 1):
    channel.basic_publish("", queue, line.removesuffix(b"\n"), properties)
    if mode == "tx" and number % 500 == 0:
        channel.tx_commit()
if mode == "tx":
    channel.tx_commit()
connection.close()
