#!/usr/bin/env python
"""Send one message to a RabbitMQ queue: the blog's send.py on today's pika.

Usage: python send.py [--url URL] [--queue NAME] [--durable] [--quorum] [MESSAGE ...]

The words of MESSAGE joined by spaces are the body (default: Hello World!).
--url defaults to $AMQP_URL, else amqp://guest:guest@localhost:5672/%2F.
"""
import argparse
import os
import socket
import ssl
import sys

import pika
from pika import exceptions

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def main():
    args = parse_args()
    connection = connect(args.urls)
    channel = connection.channel()

    connection, channel = declare_queue(connection, channel, args)

    # Publisher confirms: ' [x] Sent' and exit 0 mean the broker has taken the
    # message (onto disk with --durable), not merely that it left our socket.
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    channel.basic_publish(exchange='',
                          routing_key=args.queue,
                          body=args.message,
                          properties=persistent if args.durable else None,
                          mandatory=True)
    print(f" [x] Sent {args.message!r}", flush=True)
    connection.close()


def parse_args():
    parser = argparse.ArgumentParser(
        description="Send a message to a RabbitMQ queue (the blog's send.py).",
        epilog="URL defaults to $AMQP_URL (a comma-separated list is fine), "
               "else amqp://guest:guest@localhost:5672/%2F.")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help="words of the message (default: Hello World!)")
    parser.add_argument("--url", action="append", metavar="URL",
                        help="amqp[s]://user:pass@host:port/vhost; repeat to try several")
    parser.add_argument("--queue", default="hello", type=queue_name, metavar="NAME",
                        help="queue to send to (default: hello)")
    parser.add_argument("--durable", action="store_true",
                        help="durable queue, persistent message: survives a restart")
    parser.add_argument("--quorum", action="store_true",
                        help="a quorum queue: replicated on a cluster (implies --durable)")
    args = parser.parse_args()
    args.durable = args.durable or args.quorum
    args.message = " ".join(args.message) or "Hello World!"
    args.urls = url_list(parser, args.url)
    return args


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


def connect(urls):
    """Connect to the first broker in the list that answers."""
    problems = []
    for params in urls:
        where = f"{params.host}:{params.port}"
        try:
            return pika.BlockingConnection(params)
        except exceptions.ProbableAuthenticationError:
            fail(f"login refused for user {params.credentials.username!r} on {where}: "
                 "wrong user name or password"
                 + (" (guest may only log in from localhost)"
                    if params.credentials.username == "guest" else ""))
        except exceptions.ProbableAccessDeniedError:
            fail(f"access refused to virtual host {params.virtual_host!r} on {where}: it does "
                 f"not exist or user {params.credentials.username!r} has no permissions there")
        except (exceptions.AMQPConnectionError, OSError) as error:
            problems.append(f"{where} ({why_not_connected(error)})")
    fail(f"cannot connect to {', '.join(problems)}"
         + ("; is RabbitMQ running? See README.md, 'Start a broker'"
            if all("connection refused" in problem for problem in problems) else ""))


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


def why_failed(error):
    """One line for an error after connecting."""
    if isinstance(error, exceptions.UnroutableError):
        return "the broker could not route the message to the queue (was it deleted?)"
    if isinstance(error, exceptions.NackError):
        return ("the broker refused to take the message (nack; a quorum queue does so "
                "for a few seconds while it elects a new leader: send again)")
    if isinstance(error, (exceptions.ChannelClosedByBroker,
                          exceptions.ConnectionClosedByBroker)):
        return f"the broker refused: {error.reply_code} {error.reply_text}"
    return f"lost the connection to the broker ({error})"


def refuse_existing(queue, kind, option):
    fail(f"queue {queue!r} exists and is not {kind}, which {option} needs; use another "
         f"--queue, or delete it (local broker: broker/rabbitmqctl delete_queue {queue})")


def note(message):
    print(f"send.py: note: {message}", file=sys.stderr)


def fail(message):
    print(f"send.py: error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except (exceptions.AMQPError, OSError) as error:
        fail(why_failed(error))
    except KeyboardInterrupt:
        sys.exit(130)
