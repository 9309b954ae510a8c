#!/usr/bin/env python
"""Send a message to a RabbitMQ queue: the blog's send.py on today's pika.

Usage: python send.py [--url URL] [--queue NAME] [--durable] [--quorum | --stream]
                      [--timeout SECONDS] [MESSAGE ... | -]

Exit status 0 means the broker confirmed every message; -h explains the options.
What receive.py needs too (connecting, declaring, the error lines) is in amqp_cli.py.
"""
import contextlib
import logging
import os
import re
import signal
import sys

import pika
from pika import exceptions

import amqp_cli


def main():
    args = parse_args()
    connection = amqp_cli.connect(args.parameters)
    channel = connection.channel()

    connection, channel = amqp_cli.declare_queue(connection, channel, args)

    # Publisher confirms: exit 0 means the broker has every message (on disk
    # with --durable), not merely that it left our socket.
    channel.confirm_delivery()
    for body in messages(args):
        with confirm_deadline(args.timeout):  # pika alone could wait for ever
            channel.basic_publish(exchange='',
                                  routing_key=args.queue,
                                  body=body,
                                  properties=PERSISTENT if args.durable else None,
                                  mandatory=True)
        progress.confirmed += 1
        print(f" [x] Sent {amqp_cli.shown(body)}")
    connection.close()


PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


class Progress:
    """How far send.py got, so that an error line can say what was sent."""
    from_stdin = False  # send.py -: one message per line
    taken = 0           # messages handed to basic_publish (the last may lack its confirm)
    confirmed = 0       # messages the broker confirmed
    all_taken = False   # no more messages to send


progress = Progress()


def parse_args():
    parser = amqp_cli.argument_parser("Send a message to a RabbitMQ queue (the blog's send.py).",
                                      "queue to send to")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help="words of the message (default: Hello World!); a lone - sends "
                             "each line of stdin as one message, an empty line as an empty one")
    parser.add_argument("--timeout", type=amqp_cli.number(0.5, 3600, float), default=10,
                        metavar="SECONDS", help="wait at most this long to connect, for a "
                        "confirm, or while the broker blocks publishers (default 10; a "
                        "frozen broker is noticed within SECONDS + 10, a missing confirm within "
                        "SECONDS + 15)")
    args = amqp_cli.parse_common(parser)
    progress.from_stdin = args.message == ["-"]
    for params in args.parameters:
        params.socket_timeout = params.stack_timeout = args.timeout
        params.blocked_connection_timeout = args.timeout
        if params.heartbeat is None:  # pika notices silence in 1 to 2 x (heartbeat + 5) s
            params.heartbeat = max(1, round(args.timeout / 2))
    return args


def messages(args):
    """The bodies to send, as bytes: each line of stdin for -, else the words given."""
    if progress.from_stdin:
        bodies = (line[:-1] if line.endswith(b"\n") else line for line in sys.stdin.buffer)
    else:  # os.fsencode gives back the very bytes of the command line
        bodies = [os.fsencode(" ".join(args.message)) if args.message else b"Hello World!"]
    for body in bodies:
        progress.taken += 1
        yield body
    progress.all_taken = True
    if progress.taken == 0:
        amqp_cli.note("stdin was empty: nothing sent")


@contextlib.contextmanager
def confirm_deadline(seconds):
    """pika waits for a confirm as long as the broker takes, and a quorum queue cut off
    from its majority never answers: the alarm clock ends that wait."""
    if not hasattr(signal, "setitimer"):  # Windows: pika's own bounds only
        yield
        return
    signal.signal(signal.SIGALRM, no_confirm_in_time)
    signal.setitimer(signal.ITIMER_REAL, seconds + 15)  # after pika's own, more exact bounds
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def no_confirm_in_time(signum, frame):
    raise amqp_cli.Failure("no confirm from the broker within --timeout + 15 s")


def remember_blocked_reason(record):
    """pika tells the broker's reason for blocking publishers ("low on memory") only in its log."""
    blocked.extend(re.findall(r"reason=([^'\]]+)", record.getMessage()))
    return True  # the record goes on as usual


blocked = []
logging.getLogger("pika.connection").addFilter(remember_blocked_reason)


def explain_send(error):
    """send.py's words for an error: (exit status, line); 0 if every message was confirmed."""
    if isinstance(error, KeyboardInterrupt):
        return 130, f"interrupted; {sent_so_far()}"
    if isinstance(error, OSError) and progress.confirmed == progress.taken > 0:
        # pika wraps its own socket errors: this is the ' [x] Sent' line failing.
        if not progress.from_stdin:
            return 0, ("note: the message was sent and confirmed, but its ' [x] Sent' line "
                       f"could not be written ({error.strerror})")
        return 1, f"error: stdout failed ({error.strerror}); {sent_so_far()}"
    if progress.all_taken and progress.taken == progress.confirmed:
        return 0, ("note: every message was sent and confirmed; then "
                   f"{amqp_cli.in_words(error)}")
    if isinstance(error, exceptions.NackError):
        why = ("the broker refused the message (nack): the queue is full and rejects new ones, "
               "or it is a quorum queue electing a leader")
    elif isinstance(error, exceptions.UnroutableError):
        why = "the broker could not route the message to the queue: was it deleted just now?"
    elif isinstance(error, exceptions.ConnectionBlockedTimeout):
        reason = blocked[-1] if blocked else "a resource alarm"
        why = f"the broker blocked publishers ({reason}) for longer than --timeout"
    else:
        why = amqp_cli.in_words(error)
    # The broker said no to the message in hand (nack, unroutable, channel closed).
    refused = isinstance(error, exceptions.AMQPChannelError)
    return 1, f"error: {why}" + (f"; {sent_so_far(refused)}" if progress.taken else "")


def sent_so_far(refused=False):
    unsure = progress.taken > progress.confirmed and not progress.all_taken and not refused
    if not progress.from_stdin:
        return "the message may or may not be in the queue" if unsure else \
            "the message was not sent"
    lines = "line" if progress.confirmed == 1 else "lines"
    return (f"{progress.confirmed} {lines} sent and confirmed"
            + (f", line {progress.taken} may or may not be in the queue" if unsure else "")
            + f"; resume from line {progress.confirmed + 1}")


if __name__ == "__main__":
    sys.exit(amqp_cli.run(main, explain_send))
