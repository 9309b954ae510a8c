"""A bare pika publisher: each line of stdin one message, as `send.py -` sends them.

Usage: raw_publisher.py URL QUEUE confirm|tx|window [durable]
confirm: a publisher confirm awaited per message (send.py's guarantee);
tx: a transaction committed every 500 messages (a batch is all or unknown);
window: the same guarantee as confirm, without waiting for each: a SelectConnection
with up to 1,000 messages unconfirmed (exit 1 on a nack or a lost connection).
"""
import collections
import sys

import pika

WINDOW = 1000

url, queue, mode = sys.argv[1:4]
durable = "durable" in sys.argv[4:]
properties = pika.BasicProperties(delivery_mode=2) if durable else None
bodies = (line.removesuffix(b"\n") for line in sys.stdin.buffer)


def publish_blocking():
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=durable)
    if mode == "confirm":
        channel.confirm_delivery()
    else:
        channel.tx_select()
    for number, body in enumerate(bodies, 1):
        channel.basic_publish("", queue, body, properties)
        if mode == "tx" and number % 500 == 0:
            channel.tx_commit()
    if mode == "tx":
        channel.tx_commit()
    connection.close()


def publish_window():
    unconfirmed = collections.deque()  # delivery tags, in the order published
    published = 0
    failure = []

    def top_up(channel):
        nonlocal published
        while len(unconfirmed) < WINDOW and (body := next(bodies, None)) is not None:
            channel.basic_publish("", queue, body, properties)
            published += 1
            unconfirmed.append(published)
        if not unconfirmed:
            channel.connection.close()  # every line read and confirmed

    def on_confirm(frame):
        tag = frame.method.delivery_tag
        if isinstance(frame.method, pika.spec.Basic.Nack):
            failure.append(f"nack for message {tag}")
            channel.connection.close()
            return
        if frame.method.multiple:
            while unconfirmed and unconfirmed[0] <= tag:
                unconfirmed.popleft()
        else:
            unconfirmed.remove(tag)
        top_up(channel)

    def on_channel(opened):
        nonlocal channel
        channel = opened
        channel.add_on_close_callback(on_channel_closed)
        channel.queue_declare(queue, durable=durable, callback=lambda _: channel.confirm_delivery(
            on_confirm, callback=lambda _: top_up(channel)))

    def on_channel_closed(channel, reason):
        if channel.connection.is_open:  # closed by the broker (a refused declare)
            failure.append(repr(reason))
            channel.connection.close()

    def on_closed(connection, reason):
        if unconfirmed or not isinstance(reason, pika.exceptions.ConnectionClosedByClient):
            failure.append(repr(reason))
        connection.ioloop.stop()

    channel = None
    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=lambda connection: connection.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda connection, error: on_closed(connection, error),
        on_close_callback=on_closed)
    connection.ioloop.start()
    if failure:
        sys.exit(f"raw_publisher: {failure[0]}; {published - len(unconfirmed)} confirmed")


if mode == "window":
    publish_window()
else:
    publish_blocking()
