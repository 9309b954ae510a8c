#!/usr/bin/env python
"""Receive messages from a RabbitMQ queue: the blog's receive.py on today's pika.

Usage: python receive.py [--url URL] [--queue NAME] [--count N] [--durable] [--quorum |
                         --stream [--offset WHERE]] [--ack] [--prefetch N] [--work SECONDS] [--raw]

Prints each message as it arrives, until Ctrl+C (or N messages with --count); rides out a
broker restart. main() is the blog's lines; what the tool adds is in hello/ beside it.
"""
import sys

import hello  # first: Ctrl+C is quiet from here on, and a Python without pika is told what to do

try:
    import pika
except ImportError:
    sys.exit(hello.no_pika("receive.py"))

from hello import consumer, errors, options, queues


def main():
    args = parse_args()
    worker = consumer.Consumer(args)  # what it remembers from one message to the next
    def callback(ch, method, properties, body):
        if not worker.wants(properties):  # a stream's chunk goes on after --count
            return
        if args.raw:
            worker.write_raw(body)  # the bytes alone
        else:
            print(f" [x] Received {hello.shown(body)}"
                  + (" (redelivered)" if method.redelivered else ""))
        worker.worked(ch, method)  # --work, then the ack

    while True:  # the blog's steps, again after a lost connection
        try:
            with errors.connecting(args.parameters):
                connection = pika.BlockingConnection(args.parameters)
            channel = connection.channel()
            try:
                channel.queue_declare(queue=args.queue, durable=args.durable,
                                      arguments=args.arguments)
            except pika.exceptions.AMQPError as refusal:  # today's brokers: hello/queues.py
                connection, channel = queues.declared_otherwise(refusal, connection, args)
            channel.basic_consume(queue=args.queue, on_message_callback=callback,
                                  **worker.subscribe(channel))
            print(' [*] Waiting for messages. To exit press CTRL+C', file=args.info)
            channel.start_consuming()
            return worker.finish(connection)
        except (errors.CannotConnect, pika.exceptions.AMQPError) as error:
            worker.wait_to_reconnect(error)


def parse_args():
    parser = options.parser("Receive messages from a RabbitMQ queue (the blog's receive.py).",
                            "queue to receive from")
    parser.add_argument("--offset", type=consumer.stream_offset, metavar="WHERE",
                        help="where to start reading a stream: first (the default), last, next, "
                             "an offset N, a time (ISO 8601) or an age like 10m or 2h")
    parser.add_argument("--count", type=options.number(1, 10**9), metavar="N",
                        help="exit after N messages; the rest stay in the queue")
    parser.add_argument("--ack", action="store_true",
                        help="ack after the work: a dead worker's message comes back")
    parser.add_argument("--prefetch", type=options.number(1, 65535), default=10, metavar="N",
                        help="unacked messages a worker holds (default 10; 1 shares long "
                             "tasks strictly fairly, 10 drains 1.5 to 3x faster; --count "
                             "on a queue takes one at a time)")
    parser.add_argument("--work", type=options.number(0, 86400, float), default=0,
                        metavar="SECONDS", help="simulated work per message (default 0)")
    parser.add_argument("--raw", action="store_true",
                        help="print only each body and a newline, bytes as they are")
    args = options.parse(parser)
    if isinstance(sys.stdout, errors.ClosedStdout):  # messages taken would be lost
        raise errors.Failure("cannot write the output: stdout is closed")
    args.info = sys.stderr if args.raw else sys.stdout  # with --raw, stdout has bodies only
    return args


if __name__ == "__main__":
    sys.exit(errors.run(main, consumer.explain))
