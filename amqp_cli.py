"""What send.py and receive.py both need besides the blog's lines, written once.

Both scripts stand alone in the blog's sense: each runs by itself, in any order,
and declares the queue itself. What they share lives here, in the order a message
meets it: the options, connecting, declaring the queue on today's brokers, and the
error boundary with the words for what went wrong. Only pika is needed.
"""
import argparse
import os
import re
import signal
import socket
import ssl
import sys
import traceback
from urllib.parse import parse_qsl, urlencode

import pika
from pika import exceptions, spec
from pika.tcp_socket_opts import _SUPPORTED_TCP_OPTIONS, set_sock_opts

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"


def argument_parser(description, queue_help):
    """The options both scripts take; each script adds its own."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog=f"URL defaults to $AMQP_URL (a comma-separated list is fine), else {DEFAULT_URL}."
               " HELLO_TRACEBACK=1 shows the traceback of an error.")
    parser.add_argument("--url", action="append", metavar="URL",
                        help="amqp[s]://user:pass@host:port/vhost; repeat to try several")
    parser.add_argument("--queue", default="hello", type=queue_name, metavar="NAME",
                        help=f"{queue_help} (default: hello)")
    parser.add_argument("--durable", action="store_true",
                        help="durable queue, persistent messages: survive a restart")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--quorum", action="store_true",
                      help="a quorum queue: replicated on a cluster (implies --durable)")
    kind.add_argument("--stream", action="store_true",
                      help="a stream: keeps its messages for every reader (implies --durable)")
    return parser


def parse_common(parser):
    args = parser.parse_args()
    args.durable = args.durable or args.quorum or args.stream
    args.parameters = connection_parameters(parser, args.url)
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
    if not 0 < len(text.encode()) <= 255:
        raise argparse.ArgumentTypeError("a queue name is 1 to 255 bytes")
    return text


def connection_parameters(parser, urls):
    """pika's parameters for each URL of --url, else of $AMQP_URL, else the default."""
    where, parameters = "--url" if urls else "AMQP_URL", []
    for url in urls or (os.environ.get("AMQP_URL") or DEFAULT_URL).split(","):
        scheme, _, rest = url.strip().partition("://")
        shown_url = f"{scheme}://{rest.rpartition('@')[2].partition('?')[0]}"
        try:  # pika would misread an unencoded / in a password, and print part of it
            if scheme.lower() not in ("amqp", "amqps"):
                raise ValueError("a URL starts with amqp:// or amqps://")
            if re.search("[/?#]", rest.rpartition("@")[0]):
                raise ValueError("percent-encode / ? # in user name and password (%2F %3F %23)")
            base, _, query = url.strip().partition("?")
            for name, value in parse_qsl(query, keep_blank_values=True):
                check_url_option(base, name, value)
            parameters.append(pika.URLParameters(url.strip()))
        except Exception as error:  # pika raises ValueError, TypeError, SyntaxError...
            parser.error(f"bad {where} '{shown_url}': {error}")
    return parameters


def check_url_option(base, name, value):
    """Fail now on a URL option that pika takes but would fail with only while connecting."""
    shown_value = "(not shown: it holds a password)" if "password" in value else repr(value)
    try:
        if not value:
            raise ValueError("no value")
        params = pika.URLParameters(f"{base}?{urlencode({name: value})}")
        for seconds in (params.socket_timeout, params.stack_timeout, params.retry_delay,
                        params.blocked_connection_timeout):
            if seconds is not None and not 0 <= seconds <= 10**6:
                raise ValueError("seconds must be between 0 and 1000000")
        # The frames pika sends while connecting, encoded with these values.
        spec.Connection.StartOk(params.client_properties or {}, "PLAIN", "", params.locale).encode()
        spec.Connection.TuneOk(params.channel_max, params.frame_max, params.heartbeat or 0).encode()
        unknown = set(params.tcp_options or ()) - set(_SUPPORTED_TCP_OPTIONS)
        if unknown:
            raise ValueError(f"unknown TCP option {', '.join(sorted(unknown))}")
        with socket.socket() as sock:  # applied as pika would, to a socket that never connects
            set_sock_opts(params.tcp_options, sock)
            if params.ssl_options:
                hostname = params.ssl_options.server_hostname or params.host
                params.ssl_options.context.wrap_socket(sock, server_hostname=hostname).close()
    except Exception as error:
        if isinstance(error, exceptions.UnsupportedAMQPFieldException):
            error = f"AMQP cannot carry a {type(error.args[-1]).__name__}"
        raise ValueError(f"option {name}={shown_value}: {error}") from None


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


def declare_queue(connection, channel, args, durable=None):
    """The blog's queue_declare for today's brokers, which close the channel (406) or
    even the connection (541) when they refuse one: returns those to go on with."""
    kind = "quorum" if args.quorum else "stream" if args.stream else None
    durable = args.durable if durable is None else durable
    try:
        channel.queue_declare(queue=args.queue, durable=durable,
                              arguments={"x-queue-type": kind} if kind else None)
    except exceptions.ChannelClosedByBroker as error:
        if error.reply_code != 406:
            raise
        channel = use_existing_queue(connection, args, error.reply_text.split(" - ", 1)[-1])
    except exceptions.ConnectionClosedByBroker as error:
        if "transient_nonexcl_queues" not in error.reply_text:
            raise
        note(f"this RabbitMQ refuses non-durable queues; declaring {args.queue!r} durable")
        connection = connect(args.parameters)
        return declare_queue(connection, connection.channel(), args, durable=True)
    return connection, channel


def use_existing_queue(connection, args, differs):
    """The queue exists with other settings: use it, unless an option needs what it lacks."""
    if "'durable'" in differs and "current is 'true'" in differs:  # a stream, perhaps: ask
        try:
            connection.channel().queue_declare(queue=args.queue, durable=True)
        except exceptions.ChannelClosedByBroker as error:
            differs = error.reply_text.split(" - ", 1)[-1]
    for asked, settings, kind, option in [
            (args.quorum, "'x-queue-type' 'durable'", "a quorum queue", "--quorum"),
            (args.stream, "'x-queue-type' 'durable'", "a stream", "--stream"),
            (args.durable, "'durable'", "durable", "--durable")]:
        if asked and any(setting in differs for setting in settings.split()):
            raise Failure(f"queue {args.queue!r} exists and is not {kind}, which {option} "
                          "needs; use another --queue, or delete it (local broker: "
                          f"broker/rabbitmqctl delete_queue {args.queue})")
    args.stream = re.search("current is (the value )?'stream'", differs) is not None
    note(f"queue {args.queue!r} is a stream; using it as one, as --stream does" if args.stream
         else f"queue {args.queue!r} already exists with other settings ({differs}); "
         "using it as it is")
    channel = connection.channel()
    channel.queue_declare(queue=args.queue, passive=True)
    return channel


def shown(body):
    """The body as the blog shows it: text if it is UTF-8, else the raw bytes."""
    try:
        return repr(body.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(body)


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


def note(message):
    print(f"{os.path.basename(sys.argv[0])}: note: {message}", file=sys.stderr)
