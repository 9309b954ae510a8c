"""The error boundary and the words for what went wrong: a stderr line, a status, no traceback."""
import contextlib
import errno
import os
import signal
import socket
import ssl
import sys
import traceback

import pika
from pika import exceptions


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
    """Raised by a signal handler. Not an Exception, which pika's I/O handlers catch."""


class Interrupted(Abort):
    def __init__(self, signum):  # Ctrl+C or SIGTERM
        super().__init__(signum)
        self.status = 128 + signum  # the shell's convention: 130, 143


def interrupted(signum, frame):
    raise Interrupted(signum)


def handle_signals(handler):
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


class ClosedStdout:
    """sys.stdout when the script started with stdout closed (>&-)."""

    def write(self, text):
        raise OSError(errno.EBADF, "stdout is closed")

    def flush(self):  # at exit, Python flushes stdout: nothing to do
        pass


def run(main, explain):
    """The error boundary: what main() raises ends as explain(error)'s (status, line)."""
    if sys.stdout is None:
        sys.stdout = ClosedStdout()
    else:  # each line at once, even through a pipe; what the terminal cannot show, escaped
        sys.stdout.reconfigure(line_buffering=True, errors="backslashreplace")
    try:
        handle_signals(interrupted)  # even from a shell that ignores SIGINT
        main()
        status, line = 0, None
    except (Exception, Abort) as error:
        handle_signals(signal.SIG_DFL)  # what comes now is quick; another Ctrl+C ends it
        if os.environ.get("HELLO_TRACEBACK"):
            traceback.print_exc()
        status, line = (error.status, error.line) if isinstance(error, Exit) else explain(error)
    handle_signals(signal.SIG_DFL)
    try:
        sys.stdout.flush()
    except OSError:  # a closed pipe: what is left goes nowhere, not to a complaint at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if line:
        print(f"{os.path.basename(sys.argv[0])}: {line}", file=sys.stderr)
    return status


@contextlib.contextmanager
def connecting(parameters):
    """Around the blog's pika.BlockingConnection(...): a failure in words. pika tries the
    URLs in turn and tells why the last one failed."""
    last = parameters[-1]
    where, user = f"{last.host}:{last.port}", last.credentials.username
    try:
        yield
    except Exception as error:  # whatever the cause, no broker can be used now
        cause = innermost(error)
        if isinstance(cause, exceptions.ProbableAuthenticationError):
            remote = user == "guest" and not loopback(last.host)
            hint = " (guest may only log in from localhost)" if remote else ""
            raise Failure(f"login refused for user {user!r} on {where}: wrong user name or "
                          f"password{hint}") from None
        if isinstance(cause, exceptions.ProbableAccessDeniedError):
            raise Failure(f"access refused to virtual host {last.virtual_host!r} on {where}: "
                          f"it does not exist or {user!r} has no permissions there") from None
        why = why_not_connected(cause)
        hint = ("; is RabbitMQ running? Start one with: python3 broker/local.py start "
                "(docs/broker.md)") if why == "connection refused" else ""
        hosts = ", ".join(f"{params.host}:{params.port}" for params in parameters)
        raise CannotConnect(f"cannot connect to {hosts} ({why}){hint}") from None


def loopback(host):
    import ipaddress  # only here: it is needed only when a login fails

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def innermost(error):
    """The error under pika's wrappings: the socket's own, or the broker's refusal."""
    while True:  # wrapped once or twice, or the last of a list of attempts
        inner = getattr(error, "exception", None) or (getattr(error, "exceptions", None) or
                                                     [None])[-1] or (error.args and error.args[0])
        if not isinstance(inner, BaseException):
            return error
        error = inner


def why_not_connected(error):
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
