#!/usr/bin/env python
"""Receive messages from a RabbitMQ queue: the blog's receive.py on today's pika.

Usage: python receive.py [--url URL] [--queue NAME] [--count N] [--durable] [--quorum |
                         --stream [--offset WHERE]] [--ack] [--prefetch N] [--work SECONDS] [--raw]

Prints each message as it arrives, until Ctrl+C (or N messages with --count); rides out a
broker restart. -h explains the options; amqp_cli.py holds what send.py needs too.
"""
import argparse
import re
import sys
import time
from datetime import datetime, timedelta

try:
    import pika
except ImportError:  # a Python without pika: one line that says what to do
    sys.exit("receive.py: error: pika is missing; run: pip install -r requirements.txt")

import amqp_cli


def main():
    args = parse_args()
    worker = Worker(args)
    while True:  # the blog's steps, again after a lost connection
        try:
            connection = amqp_cli.connect(args.parameters)
            channel = connection.channel()

            connection, channel, stream = amqp_cli.declare_queue(connection, channel, args)

            arguments = worker.subscribe(channel, stream)
            channel.basic_consume(queue=args.queue,
                                  on_message_callback=worker.callback,
                                  auto_ack=not worker.acks, arguments=arguments)

            print(' [*] Waiting for messages. To exit press CTRL+C', file=args.info_stream)
            channel.start_consuming()
            return worker.finish(connection)
        except (amqp_cli.CannotConnect, pika.exceptions.AMQPError) as error:
            worker.wait_to_reconnect(error)


class Worker:
    """The blog's callback, and what it remembers from one message to the next."""

    def __init__(self, args):
        self.args = args
        self.left = args.count  # messages still to take from the queue (None: no end)
        self.held = 0           # messages shown on this connection and not yet acknowledged
        self.offset = args.offset or "first"  # in a stream: where the next read starts
        self.cancelled = False  # the broker ended our subscription
        self.subscribed = False  # once: then a lost connection is worth connecting again
        self.delay = 0          # seconds before the next reconnect; 0 while connected

    def subscribe(self, channel, stream):
        """Set up a new channel; returns basic_consume's arguments."""
        if self.delay:
            amqp_cli.note("reconnected")
        if stream and self.left:  # read, whatever became of their acknowledgements
            self.left -= self.held
        self.held, self.subscribed, self.delay, self.stream = 0, True, 0, stream
        channel.add_on_cancel_callback(self.on_cancel)
        # --count: the rest stay in the queue. A stream gives more only as we ack.
        self.acks = self.args.ack or self.left is not None or stream
        if self.acks:
            # A worker holds at most this many unacknowledged messages; the rest wait in
            # the queue for other workers (1 = strictly fair dispatch). With --count, the
            # broker never sends more than are still wanted, and with --work each message
            # is acknowledged after its work, before the next one comes.
            self.window = min(self.args.prefetch, self.left or self.args.prefetch)
            if self.left and self.args.work:
                self.window = 1
            channel.basic_qos(prefetch_count=self.window)
        if not stream:
            return None
        # A stream keeps every message: a reader says where it starts. After a reconnect,
        # it goes on from where it was, even if it started at next, last or 10m.
        where, self.offset = self.offset, point_in_time(self.offset)
        return {"x-stream-offset": where}

    def callback(self, ch, method, properties, body):
        if self.held == self.left:  # a stream's chunk goes on after what was wanted
            return
        if self.args.raw:
            sys.stdout.buffer.write(body + b"\n")
            sys.stdout.flush()
        else:
            print(f" [x] Received {amqp_cli.shown(body)}"
                  + (" (redelivered)" if method.redelivered else ""))
        if self.stream:
            self.offset = properties.headers["x-stream-offset"] + 1
        if self.acks:
            self.held += 1
        if self.args.work:
            ch.connection.sleep(self.args.work)  # unlike time.sleep, keeps heartbeats going
        if self.acks and self.args.work:  # once a cancel that came during it has been seen
            ch.connection.call_later(0, lambda: self.acknowledge(ch, method))
        elif self.acks:
            self.acknowledge(ch, method)

    def acknowledge(self, ch, method):
        """The blog's basic_ack; with --count, only while the broker cannot send more
        than are still wanted (--work: the prefetch is 1), and at the last one, a cancel
        first."""
        if self.cancelled or not ch.is_open:  # start_consuming says why
            return
        if self.held == self.left and self.stream:  # after the rest of the chunk, unread
            ch.connection.call_later(0, ch.stop_consuming)
        elif self.held == self.left:
            ch.basic_cancel(method.consumer_tag)
            ch.basic_ack(delivery_tag=method.delivery_tag, multiple=True)
            self.left = self.held = 0
        elif self.left is None or self.left - self.held >= self.window:
            ch.basic_ack(delivery_tag=method.delivery_tag)
            self.held -= 1
            self.left = None if self.left is None else self.left - 1

    def on_cancel(self, method_frame):
        self.cancelled = True

    def finish(self, connection):
        """start_consuming returned: --count was reached, or the broker cancelled us."""
        if not self.cancelled:
            return connection.close()
        try:
            connection.channel().queue_declare(queue=self.args.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            raise amqp_cli.Failure(f"{self.ended()}: the queue was deleted") from None
        if self.held and not self.stream:  # 4.3 cancels, not closes
            raise amqp_cli.Failure(self.timed_out())
        raise amqp_cli.Failure(self.ended())

    def ended(self):
        return f"the broker ended the subscription to queue {self.args.queue!r}"

    def timed_out(self):
        return (f"the broker took back what was not acknowledged within the consumer_timeout "
                f"of queue {self.args.queue!r} (--work too long?); it is back in the queue")

    def wait_to_reconnect(self, error):
        """After a lost connection: wait a little longer each time, then go on."""
        if isinstance(error, pika.exceptions.ChannelClosedByBroker) and re.match(
                "PRECONDITION_FAILED - delivery acknowledgement on channel [0-9]+ timed out",
                error.reply_text):  # RabbitMQ before 4.3
            raise amqp_cli.Failure(self.timed_out()) from None
        if self.held == self.left:  # --count reached: whatever the error, the run is done
            lost = f"{self.held} message(s) may come back, marked (redelivered)"
            raise amqp_cli.Exit(0, f"note: {amqp_cli.in_words(error)} before the last "
                                f"acknowledgement; {lost}" if self.held and not self.stream
                                else None)
        if not (self.subscribed and lost_connection(error)):
            raise error
        if not self.delay:
            amqp_cli.note(f"{amqp_cli.in_words(error)}; reconnecting")
        self.delay = min(2 * self.delay or 0.5, 10)
        time.sleep(self.delay)


def point_in_time(offset):
    """A stream offset relative to now (next, last, an age such as 10m) as a fixed time."""
    age = re.fullmatch(r"([0-9]+)([YMDhms])", str(offset))
    if offset not in ("next", "last") and not age:
        return offset
    unit = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = int(age.group(1)) * unit[age.group(2)] if age else 0
    return datetime.now().astimezone() - timedelta(seconds=seconds)


def lost_connection(error):
    """A restart, a frozen broker or a network failure, which connecting again can mend."""
    if isinstance(error, pika.exceptions.ConnectionClosedByBroker):
        # 320 CONNECTION_FORCED: shutting down; a bare 541: a stream just after a restart.
        return error.reply_code == 320 or (error.reply_code, error.reply_text) == (
            541, "INTERNAL_ERROR")
    if isinstance(error, pika.exceptions.ChannelClosedByBroker):  # a stream, just after a restart
        return re.fullmatch("NOT_FOUND - home node .* is down or inaccessible|PRECONDITION_FAILED"
                            " - stream queue .* does not have a running replica on the local node",
                            error.reply_text, re.DOTALL) is not None
    return isinstance(error, (amqp_cli.CannotConnect, pika.exceptions.AMQPConnectionError))


def explain_receive(error):
    """receive.py's words for an error: (exit status, line)."""
    if isinstance(error, (BrokenPipeError, amqp_cli.Interrupted)):  # | head, Ctrl+C, SIGTERM
        return 0, None
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        return 1, f"error: cannot write the output: {error.strerror or error}"
    return 1, f"error: {amqp_cli.in_words(error)}"


def parse_args():
    parser = amqp_cli.argument_parser(
        "Receive messages from a RabbitMQ queue (the blog's receive.py).", "queue to receive from")
    parser.add_argument("--offset", type=stream_offset, metavar="WHERE",
                        help="where to start reading a stream: first (the default), last, next, "
                             "an offset N, a time (ISO 8601) or an age like 10m or 2h")
    parser.add_argument("--count", type=amqp_cli.number(1, 10**9), metavar="N",
                        help="exit after N messages; the rest stay in the queue")
    parser.add_argument("--ack", action="store_true",
                        help="ack after the work: a dead worker's message comes back")
    parser.add_argument("--prefetch", type=amqp_cli.number(1, 65535), default=10, metavar="N",
                        help="unacked messages a worker holds (default 10; 1 shares long "
                             "tasks strictly fairly, 10 drains 1.5 to 3x faster)")
    parser.add_argument("--work", type=amqp_cli.number(0, 86400, float), default=0,
                        metavar="SECONDS", help="simulated work per message (default 0)")
    parser.add_argument("--raw", action="store_true",
                        help="print only each body and a newline, bytes as they are")
    args = amqp_cli.parse_common(parser)
    if args.offset is not None:  # an offset is a place in a stream
        if args.quorum:
            parser.error("argument --offset: reads a stream, not a quorum queue")
        args.stream = args.durable = True
    args.info_stream = sys.stderr if args.raw else sys.stdout  # with --raw, stdout has bodies only
    return args


def stream_offset(text):
    if text in ("first", "last", "next") or re.fullmatch(r"[0-9]+[YMDhms]", text):
        return text  # the broker reads an age such as 10m itself
    if re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)  # pika encodes it as a 64-bit long only above 2**31
    try:  # an ISO 8601 time; without a time zone, local time
        return datetime.fromisoformat(re.sub("Z$", "+00:00", text)).astimezone()
    except ValueError:
        raise argparse.ArgumentTypeError("first, last, next, an offset, an ISO 8601 time "
                                         f"or an age like 10m; not {text!r}") from None


if __name__ == "__main__":
    sys.exit(amqp_cli.run(main, explain_receive))
