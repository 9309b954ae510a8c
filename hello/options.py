"""The command line of both scripts: options, URLs, and pika's parameters for them."""
import argparse
import os
import re
import socket
import sys
from urllib.parse import parse_qsl, urlencode, urlsplit

import pika
from pika import exceptions, spec

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
# The TCP options pika applies; it only logs a warning for others. pika has no public
# list of them: tests/test_ordinary_use.py fails if pika changes these.
TCP_OPTIONS = ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_USER_TIMEOUT")
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


class Parser(argparse.ArgumentParser):
    def print_help(self, file=None):  # argparse would say nothing if stdout fails
        try:
            print(self.format_help(), end="", file=file or sys.stdout, flush=True)
        except OSError as error:  # a closed stdout is errors.ClosedStdout: "stdout is closed"
            self.exit(1, f"{self.prog}: error: cannot write the help: {error.strerror}\n")


def parser(description, queue_help):
    """The options both scripts take; each script adds its own."""
    parser = Parser(
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


def parse(parser, **url_defaults):
    """args, with what main() hands to pika: parameters (one per URL, tried in turn), the
    queue's arguments, the messages' properties. url_defaults: URL options they lack."""
    args = parser.parse_args()
    if getattr(args, "offset", None) is not None:  # receive.py's --offset: a place in a stream
        if args.quorum:
            parser.error("argument --offset: reads a stream, not a quorum queue")
        args.stream = True
    args.durable = args.durable or args.quorum or args.stream
    kind = "quorum" if args.quorum else "stream" if args.stream else None
    args.arguments = {"x-queue-type": kind} if kind else None
    args.properties = PERSISTENT if args.durable else None
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
            if not re.fullmatch(r"(.*@)?(\[.*\]|[^:]*)(:[0-9]*)?", parts.netloc):
                shown_url = f"{parts.scheme}://..."  # a / ? or # in the password cut it short
                raise ValueError("no port number after the host; percent-encode / ? # in the "
                                 "user name and password (%2F %3F %23)")
            check_url(parts)
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


def check_url(parts):
    if parts.scheme.lower() not in ("amqp", "amqps"):
        raise ValueError("a URL starts with amqp:// or amqps://")
    if "@" in parts.netloc and parts.password is None:  # pika would fail while connecting
        raise ValueError("a user name without a password; write user:password@host")


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
