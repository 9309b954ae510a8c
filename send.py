#!/usr/bin/env python
"""Send a message to a RabbitMQ queue: the blog's send.py on today's pika.

Usage: python send.py [--url URL] [--queue NAME] [--durable] [--quorum | --stream]
                      [--timeout SECONDS] [MESSAGE ... | -]
Exit status 0: the broker confirmed every message. main() is the blog's lines; hello/ the rest.
"""
import os
import sys

import hello  # first: Ctrl+C is quiet from here on, and a Python without pika is told what to do

try:
    import pika
except ImportError:
    sys.exit(hello.no_pika("send.py"))

from hello import errors, options, queues, sending


def main():
    args = parse_args()
    with errors.connecting(args.parameters):
        connection = pika.BlockingConnection(args.parameters)
    channel = connection.channel()

    try:
        channel.queue_declare(queue=args.queue, durable=args.durable, arguments=args.arguments)
    except pika.exceptions.AMQPError as refusal:  # today's brokers may say no: hello/queues.py
        connection, channel = queues.declared_otherwise(refusal, connection, args)

    if args.message == ["-"]:  # each line of stdin a message, many per round trip
        from hello.pipeline import Pipeline
        return Pipeline(args, connection).send()
    channel.confirm_delivery()  # exit 0 only once the broker has it (on disk with --durable)
    with sending.confirm_deadline(args.timeout):
        channel.basic_publish(exchange='', routing_key=args.queue, body=args.body,
                              properties=args.properties, mandatory=True)
    print(f" [x] Sent {hello.shown(args.body)}")
    connection.close()


def parse_args():
    parser = options.parser("Send a message to a RabbitMQ queue (the blog's send.py).",
                            "queue to send to")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help="words of the message (default: Hello World!); a lone - sends "
                             "each line of stdin as one message, an empty line as an empty one")
    parser.add_argument("--timeout", type=options.number(0.5, 3600, float), default=10,
                        metavar="SECONDS", help="wait at most this long to connect, or while "
                        "the broker blocks publishers (default 10); a frozen broker is noticed "
                        "within SECONDS + 10, a missing confirm within SECONDS + 15")
    timeout = parser.parse_known_args()[0].timeout
    # URL options win; pika notices silence in 1 to 2 x (heartbeat + 5) s.
    args = options.parse(parser, socket_timeout=timeout, stack_timeout=timeout,
                         blocked_connection_timeout=timeout, heartbeat=max(1, round(timeout / 2)))
    if args.message == ["-"] and sys.stdin is None:  # fd 0 would be the broker's socket
        parser.error("- reads stdin, which is closed")
    # os.fsencode gives back the very bytes of the command line.
    args.body = os.fsencode(" ".join(args.message)) if args.message else b"Hello World!"
    return args


if __name__ == "__main__":
    sys.exit(errors.run(main, sending.explain))
