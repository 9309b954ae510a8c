"""A bare pika consumer loop: this client's ceiling for the benchmark.

Usage: raw_consumer.py URL QUEUE COUNT auto|ack PREFETCH [durable] [print]
print: print and flush each message as receive.py does (the cost of printing).
"""
import sys

import pika

url, queue, count, mode, prefetch = sys.argv[1:6]
count, prefetch, ack = int(count), int(prefetch), mode == "ack"
prints = "print" in sys.argv[6:]
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.queue_declare(queue=queue, durable="durable" in sys.argv[6:])
received = 0


def callback(ch, method, properties, body):
    global received
    if prints:
        print(f" [x] Received {body.decode()!r}", flush=True)
    if ack:
        ch.basic_ack(delivery_tag=method.delivery_tag)
    received += 1
    if received == count:
        ch.stop_consuming()


if ack:
    channel.basic_qos(prefetch_count=prefetch)
channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=not ack)
channel.start_consuming()
connection.close()
