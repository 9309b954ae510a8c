#!/usr/bin/env python
"""Receive messages from a RabbitMQ queue: the blog's receive.py on today's pika.

Usage: python receive.py [--url URL] [--queue NAME] [--count N] [--durable | --quorum]
                         [--ack] [--prefetch N] [--work SECONDS] [--raw]

Prints each message as it arrives, until Ctrl+C (or N messages with --count);
rides out a broker restart. -h explains the options.
"""
import argparse
import os
import re
import signal
import socket
import ssl
import sys
import time
import traceback

import pika
from pika import exceptions


def main():
    args = parse_args()
    worker = Worker(args)
    while True:  # the blog's steps, again after a lost connection
        try:
            connection = connect(args.parameters)
            channel = connection.channel()

            connection, channel = declare_queue(connection, channel, args)

            worker.prepare(channel)
            channel.basic_consume(queue=args.queue,
                                  on_message_callback=worker.callback,
                                  auto_ack=not worker.acks)

            print(' [*] Waiting for messages. To exit press CTRL+C', file=args.info_stream)
            channel.start_consuming()
            return worker.finish(connection)
        except (CannotConnect, exceptions.AMQPError) as error:
            worker.wait_to_reconnect(error)


class Worker:
    """The blog's callback, and what it remembers from one message to the next."""

    def __init__(self, args):
        self.args = args
        self.acks = args.ack or args.count is not None  # --count: the rest stay in the queue
        self.done = 0            # messages handled (and acknowledged, when it acks)
        self.cancelled = False   # the broker ended our subscription
        self.subscribed = False  # once: then a lost connection is worth connecting again
        self.delay = 0           # seconds before the next reconnect; 0 while connected

    def prepare(self, channel):
        if self.delay:
            note("reconnected")
        self.subscribed, self.delay = True, 0
        channel.add_on_cancel_callback(self.on_cancel)
        if self.acks:
            # A worker holds at most this many unacknowledged messages; the rest
            # wait in the queue for other workers (1 = strictly fair dispatch).
            channel.basic_qos(prefetch_count=min(self.args.prefetch,
                                                 self.args.count or self.args.prefetch))

    def callback(self, ch, method, properties, body):
        if self.cancelled or self.done == self.args.count:
            return  # not ours any more: it stays in the queue
        if self.args.raw:
            sys.stdout.buffer.write(body + b"\n")
            sys.stdout.flush()
        else:
            print(f" [x] Received {shown(body)}"
                  + (" (redelivered)" if method.redelivered else ""))
        if self.args.work:
            ch.connection.sleep(self.args.work)  # unlike time.sleep, keeps heartbeats going
        if self.acks and ch.is_open:  # if not, start_consuming raises why
            ch.basic_ack(delivery_tag=method.delivery_tag)
        self.done += 1
        if self.done == self.args.count:
            # Not at once: a cancel that came during the work must be seen first.
            ch.connection.call_later(0, ch.stop_consuming)

    def on_cancel(self, method_frame):
        self.cancelled = True

    def finish(self, connection):
        """start_consuming returned: --count was reached, or the broker cancelled us."""
        if not self.cancelled:
            return connection.close()
        try:
            connection.channel().queue_declare(queue=self.args.queue, passive=True)
        except exceptions.ChannelClosedByBroker:
            raise Failure(f"the broker ended the subscription to queue {self.args.queue!r}: "
                          "the queue was deleted") from None
        if self.acks and self.done:  # RabbitMQ 4.3 cancels instead of closing the channel
            raise Failure(self.timed_out())
        raise Failure(f"the broker ended the subscription to queue {self.args.queue!r}")

    def timed_out(self):
        return (f"the broker took back what was not acknowledged within the consumer_timeout "
                f"of queue {self.args.queue!r} (--work too long?); it is back in the queue")

    def wait_to_reconnect(self, error):
        """After a lost connection: wait a little longer each time, then go on."""
        if isinstance(error, exceptions.ChannelClosedByBroker) and \
                "acknowledgement" in error.reply_text:  # RabbitMQ before 4.3
            raise Failure(self.timed_out()) from None
        if not (self.subscribed and lost_connection(error)):
            raise error
        if not self.delay:
            note(f"{in_words(error)}; reconnecting")
        self.delay = min(2 * self.delay or 0.5, 10)
        time.sleep(self.delay)


def lost_connection(error):
    """A restart, a frozen broker or a network failure, which connecting again can mend."""
    if isinstance(error, exceptions.ConnectionClosedByBroker):
        return error.reply_code == 320  # CONNECTION_FORCED: the broker is shutting down
    return isinstance(error, (CannotConnect, exceptions.AMQPConnectionError))


def explain_receive(error):
    """receive.py's words for an error: (exit status, line)."""
    if isinstance(error, (BrokenPipeError, KeyboardInterrupt)):  # | head, or Ctrl+C
        return 0, None
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        return 1, f"error: cannot write the output: {error.strerror or error}"
    return 1, f"error: {in_words(error)}"


def parse_args():
    parser = argparse.ArgumentParser(
        description="Receive messages from a RabbitMQ queue (the blog's receive.py).",
        epilog=f"URL defaults to $AMQP_URL (a comma-separated list is fine), else {DEFAULT_URL}."
               " HELLO_TRACEBACK=1 shows the traceback of an error.")
    parser.add_argument("--url", action="append", metavar="URL",
                        help="amqp[s]://user:pass@host:port/vhost; repeat to try several")
    parser.add_argument("--queue", default="hello", type=queue_name, metavar="NAME",
                        help="queue to receive from (default: hello)")
    parser.add_argument("--count", type=number(1, 10**9), metavar="N",
                        help="exit after N messages; the rest stay in the queue")
    parser.add_argument("--durable", action="store_true",
                        help="declare the queue durable, as send.py --durable does")
    parser.add_argument("--quorum", action="store_true",
                        help="a quorum queue: replicated on a cluster (implies --durable)")
    parser.add_argument("--ack", action="store_true",
                        help="ack after the work: a dead worker's message comes back")
    parser.add_argument("--prefetch", type=number(1, 65535), default=10, metavar="N",
                        help="unacked messages a worker holds (default 10; 1 shares long "
                             "tasks strictly fairly, 10 drains 1.5 to 3x faster)")
    parser.add_argument("--work", type=number(0, 86400, float), default=0, metavar="SECONDS",
                        help="simulated work per message (default 0)")
    parser.add_argument("--raw", action="store_true",
                        help="print only each body and a newline, bytes as they are")
    args = parser.parse_args()
    args.durable = args.durable or args.quorum
    args.info_stream = sys.stderr if args.raw else sys.stdout  # with --raw, stdout has bodies only
    args.parameters = connection_parameters(parser, args.url)
    return args


# -- Shared by send.py and receive.py: the same text in both (tests/test_shared_helpers.py) --

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


class Failure(Exception):
    """An error already put in words for the user."""


class CannotConnect(Failure):
    pass


def run(main, explain):
    """The error boundary: whatever goes wrong ends as one line on stderr and an exit status."""
    # Each line at once, even through a pipe; text the terminal cannot show, escaped.
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    # Ctrl+C and SIGTERM end the script here, even if started from a shell that
    # ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
        return 0
    except (Exception, KeyboardInterrupt) as error:
        if os.environ.get("HELLO_TRACEBACK"):
            traceback.print_exc()
        if isinstance(error, BrokenPipeError):  # else Python complains again at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status, line = explain(error)
        if line:
            print(f"{os.path.basename(sys.argv[0])}: {line}", file=sys.stderr)
        return status


def connection_parameters(parser, urls):
    """pika's parameters for each URL of --url, else of $AMQP_URL, else the default."""
    where, parameters = "--url" if urls else "AMQP_URL", []
    for url in urls or (os.environ.get("AMQP_URL") or DEFAULT_URL).split(","):
        scheme, _, rest = url.strip().partition("://")
        try:  # pika would misread an unencoded / in a password, and print part of it
            if scheme.lower() not in ("amqp", "amqps"):
                raise ValueError("a URL starts with amqp:// or amqps://")
            if re.search("[/?#]", rest.rpartition("@")[0]):
                raise ValueError("percent-encode / ? # in user name and password (%2F %3F %23)")
            parameters.append(pika.URLParameters(url.strip()))
        except Exception as error:  # pika raises ValueError, TypeError, SyntaxError...
            parser.error(f"bad {where} '{scheme}://{rest.rpartition('@')[2]}': {error}")
    return parameters


def connect(parameters):
    """Connect to the first broker in the list that answers."""
    problems = []
    for params in parameters:
        where, user = f"{params.host}:{params.port}", params.credentials.username
        try:
            return pika.BlockingConnection(params)
        except exceptions.ProbableAuthenticationError:
            hint = " (guest may only log in from localhost)" if user == "guest" else ""
            raise Failure(f"login refused for user {user!r} on {where}: wrong user name or "
                          f"password{hint}") from None
        except exceptions.ProbableAccessDeniedError:
            raise Failure(f"access refused to virtual host {params.virtual_host!r} on {where}: "
                          f"it does not exist or {user!r} has no permissions there") from None
        except Exception as error:  # whatever the cause, this broker cannot be used now
            problems.append(f"{where} ({why_not_connected(error)})")
    refused = all(problem.endswith("(connection refused)") for problem in problems)
    hint = "; is RabbitMQ running? See README.md, 'Start a broker'" if refused else ""
    raise CannotConnect(f"cannot connect to {', '.join(problems)}{hint}")


def why_not_connected(error):
    while True:  # pika wraps the socket's own error, sometimes twice
        inner = getattr(error, "exception", None) or (error.args and error.args[0])
        if not isinstance(inner, BaseException):
            break
        error = inner
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {error.verify_message}"
    for kind, words in [
            (ssl.SSLError, "TLS handshake failed; is it an amqps port?"),
            (ConnectionRefusedError, "connection refused"),
            (socket.gaierror, "host name not found"),
            ((TimeoutError, socket.timeout), "no answer: timed out"),
            (pika.adapters.utils.connection_workflow.AMQPConnectorStackTimeout,
             "no AMQP handshake in time: not an AMQP port, or frozen"),
            ((exceptions.IncompatibleProtocolError, exceptions.StreamLostError),
             "closed during the AMQP handshake: is it an AMQP port?")]:
        if isinstance(error, kind):
            return words
    return f"{type(error).__name__}: {error}"


def declare_queue(connection, channel, args):
    """The blog's queue_declare for today's brokers, which close the channel (406) or
    even the connection (541) when they refuse one: returns those to go on with."""
    try:
        channel.queue_declare(queue=args.queue, durable=args.durable,
                              arguments={"x-queue-type": "quorum"} if args.quorum else None)
    except exceptions.ChannelClosedByBroker as error:
        if error.reply_code != 406:
            raise
        differs = error.reply_text.split(" - ", 1)[-1]
        for asked, setting, kind, option in [
                (args.quorum, "'x-queue-type'", "a quorum queue", "--quorum"),
                (args.durable, "'durable'", "durable", "--durable")]:
            if asked and setting in differs:
                raise Failure(f"queue {args.queue!r} exists and is not {kind}, which {option} "
                              "needs; use another --queue, or delete it (local broker: "
                              f"broker/rabbitmqctl delete_queue {args.queue})") from None
        note(f"queue {args.queue!r} already exists with other settings ({differs}); "
             "using it as it is")
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, passive=True)
    except exceptions.ConnectionClosedByBroker as error:
        if "transient_nonexcl_queues" not in error.reply_text:
            raise
        note(f"this RabbitMQ refuses non-durable queues; declaring {args.queue!r} durable")
        connection = connect(args.parameters)
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, durable=True)
    return connection, channel


def in_words(error):
    """An error met after connecting, in plain words."""
    if isinstance(error, (exceptions.ChannelClosedByBroker, exceptions.ConnectionClosedByBroker)):
        if error.reply_code == 320:  # CONNECTION_FORCED: the broker is shutting down
            return f"lost the connection to the broker ({error.reply_code} {error.reply_text})"
        return f"the broker refused: {error.reply_code} {error.reply_text}"
    if isinstance(error, exceptions.AMQPHeartbeatTimeout):
        return "the broker stopped answering (missed heartbeats): frozen, or the network is down"
    if isinstance(error, (exceptions.AMQPConnectionError, ConnectionError)):
        return f"lost the connection to the broker ({error or type(error).__name__})"
    if isinstance(error, Failure):
        return str(error)
    return f"unexpected {type(error).__name__}: {error} (HELLO_TRACEBACK=1 shows where)"


def number(low, high, kind=int):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value
    return parse


def queue_name(text):
    if not 0 < len(text.encode()) <= 255:
        raise argparse.ArgumentTypeError("a queue name is 1 to 255 bytes")
    return text


def shown(body):
    """The body as the blog shows it: text if it is UTF-8, else the raw bytes."""
    try:
        return repr(body.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(body)


def note(message):
    print(f"{os.path.basename(sys.argv[0])}: note: {message}", file=sys.stderr)
# -- End of the shared part --


if __name__ == "__main__":
    sys.exit(run(main, explain_receive))
