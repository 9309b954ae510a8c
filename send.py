#!/usr/bin/env python
"""Send a message to a RabbitMQ queue: the blog's send.py on today's pika.

Usage: python send.py [--url URL] [--queue NAME] [--durable | --quorum]
                      [--timeout SECONDS] [MESSAGE ... | -]

Exit status 0 means the broker confirmed every message; -h explains the options.
"""
import argparse
import logging
import os
import re
import signal
import socket
import ssl
import sys
import traceback

import pika
from pika import exceptions


def main():
    args = parse_args()
    connection = connect(args.parameters)
    channel = connection.channel()

    connection, channel = declare_queue(connection, channel, args)

    # Publisher confirms: exit 0 means the broker has every message (on disk
    # with --durable), not merely that it left our socket.
    channel.confirm_delivery()
    for body in messages(args):
        channel.basic_publish(exchange='',
                              routing_key=args.queue,
                              body=body,
                              properties=PERSISTENT if args.durable else None,
                              mandatory=True)
        progress.confirmed += 1
        print(f" [x] Sent {shown(body)}")
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
    parser = argparse.ArgumentParser(
        description="Send a message to a RabbitMQ queue (the blog's send.py).",
        epilog=f"URL defaults to $AMQP_URL (a comma-separated list is fine), else {DEFAULT_URL}."
               " HELLO_TRACEBACK=1 shows the traceback of an error.")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help="words of the message (default: Hello World!); a lone - sends "
                             "each line of stdin as one message, an empty line as an empty one")
    parser.add_argument("--url", action="append", metavar="URL",
                        help="amqp[s]://user:pass@host:port/vhost; repeat to try several")
    parser.add_argument("--queue", default="hello", type=queue_name, metavar="NAME",
                        help="queue to send to (default: hello)")
    parser.add_argument("--durable", action="store_true",
                        help="durable queue, persistent message: survives a restart")
    parser.add_argument("--quorum", action="store_true",
                        help="a quorum queue: replicated on a cluster (implies --durable)")
    parser.add_argument("--timeout", type=number(0.5, 3600, float), default=10,
                        metavar="SECONDS", help="wait at most this long to connect, for a "
                        "confirm, or while the broker blocks publishers (default 10; a "
                        "frozen broker is noticed within SECONDS + 10)")
    args = parser.parse_args()
    args.durable = args.durable or args.quorum
    progress.from_stdin = args.message == ["-"]
    args.parameters = connection_parameters(parser, args.url)
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
        note("stdin was empty: nothing sent")


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
        return 0, f"note: every message was sent and confirmed; then {in_words(error)}"
    if isinstance(error, exceptions.NackError):
        why = ("the broker refused the message (nack): the queue is full and rejects new ones, "
               "or it is a quorum queue electing a leader")
    elif isinstance(error, exceptions.UnroutableError):
        why = "the broker could not route the message to the queue: was it deleted just now?"
    elif isinstance(error, exceptions.ConnectionBlockedTimeout):
        reason = blocked[-1] if blocked else "a resource alarm"
        why = f"the broker blocked publishers ({reason}) for longer than --timeout"
    else:
        why = in_words(error)
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
    sys.exit(run(main, explain_send))
