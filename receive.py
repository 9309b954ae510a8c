#!/usr/bin/env python
"""Receive messages from a RabbitMQ queue: the blog's receive.py on today's pika.

Usage: python receive.py [--url URL] [--queue NAME] [--count N] [--durable]
                         [--quorum] [--ack] [--prefetch N] [--work SECONDS]

Prints each message as it arrives, until Ctrl+C (or N messages with --count).
--url defaults to $AMQP_URL, else amqp://guest:guest@localhost:5672/%2F.
"""
import argparse
import os
import signal
import socket
import ssl
import sys
import time

import pika
from pika import exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
DEFAULT_PREFETCH = 10
MAX_RECONNECT_DELAY = 10  # seconds


def main():
    args = parse_args()
    # --count acks too, so that messages after the Nth stay in the queue.
    manual_ack = args.ack or args.count is not None
    received = 0

    connection = connect(args.urls)
    while True:
        channel = connection.channel()

        connection, channel = declare_queue(connection, channel, args)

        def callback(ch, method, properties, body):
            nonlocal received
            print(f" [x] Received {shown(body)}"
                  + (" (redelivered)" if method.redelivered else ""), flush=True)
            if args.work:
                ch.connection.sleep(args.work)  # unlike time.sleep, keeps heartbeats going
            if manual_ack and ch.is_open:  # if not, start_consuming raises why
                ch.basic_ack(delivery_tag=method.delivery_tag)
            received += 1
            if received == args.count:
                ch.stop_consuming()

        if manual_ack:
            # A worker holds at most this many unacknowledged messages; the rest
            # wait in the queue for other workers (1 = strictly fair dispatch).
            channel.basic_qos(prefetch_count=min(args.prefetch, args.count or args.prefetch))
        channel.basic_consume(queue=args.queue,
                              on_message_callback=callback,
                              auto_ack=not manual_ack)

        print(' [*] Waiting for messages. To exit press CTRL+C', flush=True)
        try:
            channel.start_consuming()
        except KeyboardInterrupt:
            break  # Ctrl+C or SIGTERM: close the connection cleanly below
        except exceptions.AMQPConnectionError as error:
            if not connection_lost(error):
                raise
            note(f"lost the connection to the broker ({reason(error)}); reconnecting")
            connection = connect(args.urls, again=True)
        else:
            if received != args.count:
                fail(f"the broker ended the subscription to queue {args.queue!r} "
                     "(was it deleted?)")
            break
    connection.close()


def parse_args():
    parser = argparse.ArgumentParser(
        description="Receive messages from a RabbitMQ queue (the blog's receive.py).",
        epilog="URL defaults to $AMQP_URL (a comma-separated list is fine), else "
               f"amqp://guest:guest@localhost:5672/%2F. Prefetch {DEFAULT_PREFETCH} drains "
               "about 3x faster than 1; 1 shares long tasks among workers strictly fairly.")
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
    parser.add_argument("--prefetch", type=number(1, 65535), default=DEFAULT_PREFETCH,
                        metavar="N", help=f"unacked messages a worker holds (default "
                                          f"{DEFAULT_PREFETCH})")
    parser.add_argument("--work", type=number(0, 86400, float), default=0, metavar="SECONDS",
                        help="simulated work per message (default 0)")
    args = parser.parse_args()
    args.durable = args.durable or args.quorum
    args.urls = url_list(parser, args.url)
    return args


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
    if len(text.encode()) > 255:
        raise argparse.ArgumentTypeError("a queue name is at most 255 bytes")
    return text


def url_list(parser, urls):
    """pika parameters for --url, or else $AMQP_URL, or else the default."""
    where = "--url"
    if not urls:
        where = "AMQP_URL" if os.environ.get("AMQP_URL") else "default URL"
        urls = os.environ.get("AMQP_URL", DEFAULT_URL).split(",")
    urls = [url.strip() for url in urls]
    if not all(url.lower().startswith(("amqp://", "amqps://")) for url in urls):
        parser.error(f"bad {where}: a URL starts with amqp:// or amqps://")
    try:
        return [pika.URLParameters(url) for url in urls]
    except ValueError as error:  # pika's messages never repeat the password
        parser.error(f"bad {where}: {error}")


def connect(urls, again=False):
    """Connect to the first broker in the list that answers.

    again: after a lost connection, keep trying, waiting longer each round.
    """
    delay = 0.5
    while True:
        problems = []
        for params in urls:
            where = f"{params.host}:{params.port}"
            try:
                connection = pika.BlockingConnection(params)
                if again:
                    note(f"reconnected to {where}")
                return connection
            except exceptions.ProbableAuthenticationError:
                fail(f"login refused for user {params.credentials.username!r} on {where}: "
                     "wrong user name or password"
                     + (" (guest may only log in from localhost)"
                        if params.credentials.username == "guest" else ""))
            except exceptions.ProbableAccessDeniedError:
                fail(f"access refused to virtual host {params.virtual_host!r} on {where}: it "
                     f"does not exist or user {params.credentials.username!r} has no "
                     "permissions there")
            except (exceptions.AMQPConnectionError, OSError) as error:
                problems.append(f"{where} ({why_not_connected(error)})")
        if not again:
            fail(f"cannot connect to {', '.join(problems)}"
                 + ("; is RabbitMQ running? See README.md, 'Start a broker'"
                    if all("connection refused" in problem for problem in problems) else ""))
        time.sleep(delay)
        delay = min(2 * delay, MAX_RECONNECT_DELAY)


def reason(error):
    if isinstance(error, exceptions.ConnectionClosedByBroker):
        return f"{error.reply_code} {error.reply_text}"
    return str(error) or type(error).__name__


def connection_lost(error):
    """A broker restart or a network failure, which reconnecting can mend."""
    return (isinstance(error, (exceptions.StreamLostError, exceptions.AMQPHeartbeatTimeout))
            or (isinstance(error, exceptions.ConnectionClosedByBroker)
                and error.reply_code == 320))  # CONNECTION_FORCED: broker shutting down


def why_not_connected(error):
    while True:  # pika wraps the socket's own error, sometimes twice
        inner = getattr(error, "exception", None) or (error.args and error.args[0])
        if not isinstance(inner, BaseException):
            break
        error = inner
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed: {error.reason or error}; is it an amqps port?"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out"
    return str(error) or type(error).__name__


def declare_queue(connection, channel, args):
    """The blog's queue_declare, made to work with the queues brokers have today.

    Returns the connection and channel to go on with: the broker closes the
    channel (406) or even the connection (541) when it refuses a declaration.
    """
    try:
        channel.queue_declare(queue=args.queue, durable=args.durable,
                              arguments={"x-queue-type": "quorum"} if args.quorum else None)
        return connection, channel
    except exceptions.ChannelClosedByBroker as error:
        if error.reply_code != 406:
            raise
        differs = error.reply_text.split(" - ", 1)[-1]
        if args.quorum and "'x-queue-type'" in differs:
            refuse_existing(args.queue, "a quorum queue", "--quorum")
        if args.durable and "'durable'" in differs:
            refuse_existing(args.queue, "durable", "--durable")
        note(f"queue {args.queue!r} already exists with other settings ({differs}); "
             "using it as it is")
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, passive=True)
        return connection, channel
    except exceptions.ConnectionClosedByBroker as error:
        if "transient_nonexcl_queues" not in error.reply_text:
            raise
        note(f"this RabbitMQ refuses non-durable queues; declaring {args.queue!r} durable")
        connection = connect(args.urls)
        channel = connection.channel()
        channel.queue_declare(queue=args.queue, durable=True)
        return connection, channel


def shown(body):
    """The body as the blog shows it: text if it is UTF-8, else the raw bytes."""
    try:
        return repr(body.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(body)


def why_failed(error):
    """One line for an error after connecting."""
    if isinstance(error, exceptions.ChannelClosedByBroker) and \
            "acknowledgement" in error.reply_text and "timed out" in error.reply_text:
        return ("the broker took the message back: it was not acknowledged within its "
                "consumer_timeout (--work too long?); it is back in the queue. Raise "
                "consumer_timeout in rabbitmq.conf to allow longer work")
    if isinstance(error, (exceptions.ChannelClosedByBroker,
                          exceptions.ConnectionClosedByBroker)):
        return f"the broker refused: {error.reply_code} {error.reply_text}"
    return f"lost the connection to the broker ({reason(error)})"


def refuse_existing(queue, kind, option):
    fail(f"queue {queue!r} exists and is not {kind}, which {option} needs; use another "
         f"--queue, or delete it (local broker: broker/rabbitmqctl delete_queue {queue})")


def note(message):
    print(f"receive.py: note: {message}", file=sys.stderr)


def fail(message):
    print(f"receive.py: error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    # Ctrl+C and SIGTERM both stop consuming and close the connection cleanly,
    # even when started from a shell that ignores SIGINT in background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main()
    except (exceptions.AMQPError, OSError) as error:
        fail(why_failed(error))
    except KeyboardInterrupt:
        pass
