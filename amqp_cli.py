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
from urllib.parse import parse_qsl, urlencode, urlsplit

import pika
from pika import exceptions, spec

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
# The TCP options pika applies; it only logs a warning for others. pika has no public
# list of them: tests/test_ordinary_use.py fails if pika changes these.
TCP_OPTIONS = ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")


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


def parse_common(parser, **url_defaults):
    """url_defaults: URL options (socket_timeout=...) for URLs that do not set them."""
    args = parser.parse_args()
    args.durable = args.durable or args.quorum or args.stream
    args.parameters = connection_parameters(parser, args.url, url_defaults)
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


def connection_parameters(parser, urls, url_defaults):
    """pika's parameters for each URL of --url, else of $AMQP_URL, else the default."""
    where, parameters = "--url" if urls else "AMQP_URL", []
    listed = re.split(r",\s*(?=amqps?://)", os.environ.get("AMQP_URL") or DEFAULT_URL, flags=re.I)
    for url in urls or listed:
        url, shown_url = url.strip(), "(not shown)"
        try:
            parts = urlsplit(url)  # as pika splits it
            shown_url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
            if parts.scheme.lower() not in ("amqp", "amqps"):
                raise ValueError("a URL starts with amqp:// or amqps://")
            if not re.fullmatch(r"(.*@)?(\[.*\]|[^:]*)(:[0-9]*)?", parts.netloc):
                shown_url = f"{parts.scheme}://..."  # a / ? or # in the password cut it short
                raise ValueError("no port number after the host; percent-encode / ? # in the "
                                 "user name and password (%2F %3F %23)")
            options = parse_qsl(parts.query, keep_blank_values=True)
            base = parts._replace(query="", fragment="").geturl()
            for name, value in options:
                if [other for other, _ in options].count(name) > 1:
                    raise ValueError(f"option {name} given more than once")
                check_url_option(base, name, value)
            query = urlencode({**url_defaults, **dict(options)})
            parameters.append(pika.URLParameters(f"{base}?{query}" if query else base))
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
        unknown = set(params.tcp_options or ()) - set(TCP_OPTIONS)
        if unknown:
            raise ValueError(f"unknown TCP option {', '.join(sorted(unknown))}")
        with socket.socket() as sock:  # applied as pika would, to a socket that never connects
            for option, number in (params.tcp_options or {}).items():
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), number)
            if params.ssl_options:
                hostname = params.ssl_options.server_hostname or params.host
                params.ssl_options.context.wrap_socket(sock, server_hostname=hostname).close()
    except Exception as error:
        if isinstance(error, exceptions.UnsupportedAMQPFieldException):
            error = f"AMQP cannot carry a {type(error.args[-1]).__name__}"
        raise ValueError(f"option {name}={shown_value}: {error}") from None


class Connection(pika.BlockingConnection):
    """pika's BlockingConnection, remembering which of the URLs it reached."""

    def __init__(self, params):
        super().__init__(params)
        self.params = params


def connect(parameters):
    """Connect to the first broker in the list that answers."""
    problems = []
    for params in parameters:
        where, user = f"{params.host}:{params.port}", params.credentials.username
        try:
            return Connection(params)
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
    hint = ("; is RabbitMQ running? Start one with: python3 broker/local.py start "
            "(docs/broker.md)") if refused else ""
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
            # Not in pika's documentation; tests/test_ordinary_use.py fails if it goes.
            (pika.adapters.utils.connection_workflow.AMQPConnectorStackTimeout,
             "no AMQP handshake in time: not an AMQP port, or frozen"),
            ((exceptions.IncompatibleProtocolError, exceptions.StreamLostError),
             "closed during the AMQP handshake: is it an AMQP port?")]:
        if isinstance(error, kind):
            return words
    return f"{type(error).__name__}: {error}"


def declare_queue(connection, channel, args, durable=None):
    """The blog's queue_declare for today's brokers, which close the channel (406) or
    even the connection (541) when they refuse one. Returns the connection and channel
    to go on with, and whether the queue is a stream."""
    kind = "quorum" if args.quorum else "stream" if args.stream else None
    durable = args.durable if durable is None else durable
    try:
        channel.queue_declare(queue=args.queue, durable=durable,
                              arguments={"x-queue-type": kind} if kind else None)
    except exceptions.ChannelClosedByBroker as error:
        if error.reply_code != 406:
            raise
        return connection, *use_existing_queue(connection, args, error.reply_text)
    except exceptions.ConnectionClosedByBroker as error:
        if error.reply_code != 541 or not re.match(
                "INTERNAL_ERROR - Feature `?transient_nonexcl_queues`? is deprecated",
                error.reply_text):
            raise
        note(f"this RabbitMQ refuses non-durable queues; declaring {args.queue!r} durable")
        connection = connect(args.parameters)
        return declare_queue(connection, connection.channel(), args, durable=True)
    return connection, channel, args.stream


def use_existing_queue(connection, args, reply):
    """The queue exists with other settings: use it, unless an option needs what it lacks."""
    setting, current = inequivalent(reply)
    if (setting, current) == ("durable", "'true'"):  # a stream or a quorum queue, perhaps
        try:
            connection.channel().queue_declare(queue=args.queue, durable=True)
        except exceptions.ChannelClosedByBroker as error:
            setting, current = inequivalent(error.reply_text)
    stream = setting == "x-queue-type" and "'stream'" in current
    option = "--quorum" if args.quorum else "--stream" if args.stream else "--durable"
    if setting == "durable" and args.durable or setting == "x-queue-type" and option != "--durable":
        kind = {"--quorum": "a quorum queue", "--stream": "a stream"}.get(option, "durable")
        raise Failure(f"queue {args.queue!r} exists and is not {kind}, which {option} needs; "
                      "use another --queue, or delete it (local broker: "
                      f"broker/rabbitmqctl delete_queue {args.queue})")
    note(f"queue {args.queue!r} is a stream; using it as one, as --stream does" if stream
         else f"queue {args.queue!r} already exists with other settings ({setting} is "
         f"{current}); using it as it is")
    channel = connection.channel()
    channel.queue_declare(queue=args.queue, passive=True)
    return channel, stream


def inequivalent(reply):
    """("durable", "'false'") from "PRECONDITION_FAILED - inequivalent arg 'durable' for
    queue 'q' in vhost '/': received 'true' but current is 'false'"."""
    found = re.fullmatch(r"PRECONDITION_FAILED - inequivalent arg '([^']*)' for queue .* "
                         r"in vhost .*: received .* but current is (.*)", reply, re.DOTALL)
    if not found:
        raise Failure(f"the broker refused: 406 {reply}")
    return found.groups()


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


class Exit(Exception):
    """The end of a run, worded where the script knows what it did: status and line."""

    def __init__(self, status, line):
        super().__init__(line)
        self.status, self.line = status, line


class Abort(BaseException):
    """What a signal handler raises. Not an Exception: pika catches those in its I/O
    handlers and would report this as a lost connection."""


class Interrupted(Abort):
    """Ctrl+C or SIGTERM."""

    def __init__(self, signum):
        super().__init__(signum)
        self.status = 128 + signum  # the shell's convention: 130, 143


def interrupted(signum, frame):
    raise Interrupted(signum)


def run(main, explain):
    """The error boundary: whatever goes wrong ends as one line on stderr and an exit status."""
    # Each line at once, even through a pipe; text the terminal cannot show, escaped.
    sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    # Ctrl+C and SIGTERM end the script here, even if started from a shell that
    # ignores SIGINT in background jobs.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupted)
    try:
        main()
        status, line = 0, None
    except (Exception, Abort) as error:
        if os.environ.get("HELLO_TRACEBACK"):
            traceback.print_exc()
        # Nothing more goes to stdout; were it a closed pipe, Python would complain at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status, line = (error.status, error.line) if isinstance(error, Exit) else explain(error)
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
