#!/usr/bin/env python
"""Send a message to a RabbitMQ queue: the blog's send.py on today's pika.

Usage: python send.py [--url URL] [--queue NAME] [--durable] [--quorum | --stream]
                      [--timeout SECONDS] [MESSAGE ... | -]

Exit status 0 means the broker confirmed every message; -h explains the options.
What receive.py needs too (connecting, declaring, the error lines) is in amqp_cli.py.
"""
import collections
import contextlib
import os
import queue
import signal
import sys
import threading
import time

try:
    import pika
    from pika import exceptions
except ImportError:  # a Python without pika: one line that says what to do
    sys.exit("send.py: error: pika is missing; run: pip install -r requirements.txt")

import amqp_cli


def main():
    args = parse_args()
    connection = amqp_cli.connect(args.parameters)
    channel = connection.channel()

    connection, channel, _ = amqp_cli.declare_queue(connection, channel, args)

    if args.message == ["-"]:  # each line of stdin a message, many per round trip
        connection.close()
        return Lines(args, connection.params).send()
    channel.confirm_delivery()  # exit 0: the broker has it (on disk with --durable)
    with awaiting_confirm(args.timeout):
        channel.basic_publish(exchange='',
                              routing_key=args.queue,
                              body=args.body,
                              properties=PERSISTENT if args.durable else None,
                              mandatory=True)
    with confirmed("the message was"):
        print(f" [x] Sent {amqp_cli.shown(args.body)}")
        connection.close()


PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def parse_args():
    parser = amqp_cli.argument_parser("Send a message to a RabbitMQ queue (the blog's send.py).",
                                      "queue to send to")
    parser.add_argument("message", nargs="*", metavar="MESSAGE",
                        help="words of the message (default: Hello World!); a lone - sends "
                             "each line of stdin as one message, an empty line as an empty one")
    parser.add_argument("--timeout", type=amqp_cli.number(0.5, 3600, float), default=10,
                        metavar="SECONDS", help="wait at most this long to connect, or while "
                        "the broker blocks publishers (default 10); a frozen broker is noticed "
                        "within SECONDS + 10, a missing confirm within SECONDS + 15")
    timeout = parser.parse_known_args()[0].timeout
    # URL options win; pika notices silence in 1 to 2 x (heartbeat + 5) s.
    args = amqp_cli.parse_common(parser, socket_timeout=timeout, stack_timeout=timeout,
                                 blocked_connection_timeout=timeout,
                                 heartbeat=max(1, round(timeout / 2)))
    # os.fsencode gives back the very bytes of the command line.
    args.body = os.fsencode(" ".join(args.message)) if args.message else b"Hello World!"
    return args


class NoConfirm(BaseException):
    """No confirm in time. Not an Exception, which pika's I/O handlers would swallow."""


@contextlib.contextmanager
def awaiting_confirm(timeout):
    """pika waits for a confirm as long as the broker takes (a quorum queue cut off from
    its majority never answers): an alarm clock ends the wait, after pika's own bounds."""
    if hasattr(signal, "setitimer"):  # not on Windows: pika's own bounds only
        signal.signal(signal.SIGALRM, no_confirm_yet)
        signal.setitimer(signal.ITIMER_REAL, timeout + 15)
    try:
        yield
    except (Exception, NoConfirm, amqp_cli.Interrupted) as error:
        # A nack, a return or a closed channel: the broker said no to this message.
        fate = "is not in the queue" if isinstance(error, exceptions.AMQPChannelError) \
            else "may or may not be in the queue"
        raise amqp_cli.Exit(*explain_send(error, f"the message {fate}")) from error
    finally:
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0)


def no_confirm_yet(signum, frame):
    while frame and not frame.f_globals["__name__"].startswith("pika."):
        frame = frame.f_back
    if frame:  # pika is still waiting; once basic_publish has returned, it is confirmed
        raise NoConfirm()


@contextlib.contextmanager
def confirmed(what):
    """After the confirm, nothing can unsend it; sending it again would duplicate it."""
    try:
        yield
    except amqp_cli.Interrupted as error:
        raise amqp_cli.Exit(error.status, f"interrupted; {what} sent and confirmed") from error
    except Exception as error:  # a ' [x] Sent' line that cannot be written, or the close
        why = f"its ' [x] Sent' line could not be written ({error.strerror})" \
            if isinstance(error, OSError) else amqp_cli.in_words(error)
        raise amqp_cli.Exit(0, f"note: {what} sent and confirmed, but {why}") from error


def explain_send(error, so_far="nothing was sent", what="the message",
                 blocked="a resource alarm: low on memory or disk"):
    """send.py's words for an error: (exit status, line)."""
    if isinstance(error, amqp_cli.Interrupted):
        return error.status, f"interrupted; {so_far}"
    if isinstance(error, NoConfirm):
        why = "no confirm from the broker within --timeout + 15 s"
    elif isinstance(error, exceptions.NackError):
        why = (f"the broker refused {what} (nack): the queue is full and rejects new ones, "
               "or it is a quorum queue electing a leader")
    elif isinstance(error, exceptions.UnroutableError):
        why = f"the broker could not route {what} to the queue: was it deleted just now?"
    elif isinstance(error, exceptions.ConnectionBlockedTimeout):
        why = f"the broker blocked publishers ({blocked}) for longer than --timeout"
    else:
        why = amqp_cli.in_words(error)
    return 1, f"error: {why}; {so_far}"


class Lines:
    """send.py -: each line of stdin one message, sent as it comes, up to WINDOW awaiting
    their confirms at once (one round trip per line caps a broker 10 ms away at about
    90 lines/s). pika's SelectConnection delivers confirms as they come, and keeps
    heartbeats going while stdin is quiet."""
    WINDOW = 1000

    def __init__(self, args, params):
        self.args = args
        self.stdin = queue.Queue(self.WINDOW)  # the reader never reads further ahead
        self.flight = collections.deque()  # [line number, body, outcome, time sent]
        self.next = 1  # the number of the next line to publish
        self.end_of_input = False
        self.failure = None  # why it stops early
        self.blocked = "a resource alarm"
        self.connection = pika.SelectConnection(
            params, on_open_callback=self.on_open, on_open_error_callback=self.on_closed,
            on_close_callback=self.on_closed)

    def send(self):
        try:
            self.connection.ioloop.start()
            if self.failure:
                raise self.failure
        except (Exception, NoConfirm, amqp_cli.Interrupted) as error:
            refused = [n for n, _, got, _ in self.flight if isinstance(got, Exception)]
            what = f"line {refused[0]:,}" if refused else "a line"
            raise amqp_cli.Exit(*explain_send(error, self.so_far(), what, self.blocked)) \
                from error
        if self.next == 1:
            amqp_cli.note("stdin was empty: nothing sent")

    def read_stdin(self):
        """On a thread of its own (os.read: a daemon thread blocked in sys.stdin would
        hold its lock at exit)."""
        rest = b""
        try:
            while chunk := os.read(sys.stdin.fileno(), 65536):
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    self.hand_over(line)
            if rest:  # a last line without a newline
                self.hand_over(rest)
            self.hand_over(None)
        except OSError as error:
            self.hand_over(amqp_cli.Failure(f"cannot read stdin ({error.strerror})"))

    def hand_over(self, item):
        self.stdin.put(item)
        if self.stdin.qsize() == 1:  # else the loop has yet to take the one before
            self.connection.ioloop.add_callback_threadsafe(self.pump)

    # pika calls these from its I/O handlers, which would swallow an exception:
    # they only take note, and pump() acts.

    def on_open(self, connection):
        connection.add_on_connection_blocked_callback(self.on_blocked)
        connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self.on_closed)
        channel.add_on_return_callback(self.on_return)
        channel.confirm_delivery(self.on_confirm, callback=self.on_confirming)

    def on_confirming(self, frame):
        threading.Thread(target=self.read_stdin, daemon=True).start()
        self.connection.ioloop.call_later(1, self.check_confirms_in_time)

    def on_confirm(self, frame):
        tag, method = frame.method.delivery_tag, frame.method
        answer = "confirmed" if isinstance(method, pika.spec.Basic.Ack) else \
            exceptions.NackError([])
        for entry in self.flight:  # the delivery tag is the line number
            if entry[0] > tag:
                break
            if entry[0] == tag or method.multiple:
                entry[2] = entry[2] or answer
        self.failure = self.failure or (None if answer == "confirmed" else answer)
        self.connection.ioloop.call_later(0, self.pump)

    def on_return(self, channel, method, properties, body):
        for entry in self.flight:
            if entry[2] is None and entry[1] == body:
                entry[2] = self.failure = self.failure or exceptions.UnroutableError([])
                return

    def on_blocked(self, connection, frame):
        self.blocked = frame.method.reason

    def on_closed(self, connection_or_channel, reason):
        if not isinstance(reason, (exceptions.ConnectionClosedByClient,
                                   exceptions.ChannelClosedByClient)):
            self.failure = self.failure or reason
        if self.connection.is_closed:
            self.connection.ioloop.stop()
        elif self.connection.is_open:
            self.connection.close()

    def pump(self):
        """Print what the broker confirmed, in input order; publish what stdin gave."""
        while self.flight and self.flight[0][2] == "confirmed":
            body = self.flight.popleft()[1]
            try:
                print(f" [x] Sent {amqp_cli.shown(body)}")
            except OSError as error:
                raise amqp_cli.Failure(f"stdout failed ({error.strerror})") from None
        while not (self.failure or self.end_of_input) and len(self.flight) < self.WINDOW:
            try:
                body = self.stdin.get_nowait()
            except queue.Empty:
                return
            if body is None or isinstance(body, Exception):
                self.end_of_input, self.failure = True, body
            else:
                self.channel.basic_publish('', self.args.queue, body, mandatory=True,
                                           properties=PERSISTENT if self.args.durable else None)
                self.flight.append([self.next, body, None, time.monotonic()])
                self.next += 1
        if (self.failure or self.end_of_input) and self.connection.is_open and \
                all(entry[2] is not None for entry in self.flight):
            self.connection.close()  # done, or stopped early with every answer in

    def check_confirms_in_time(self):
        waiting = [entry[3] for entry in self.flight if entry[2] is None]
        if waiting and time.monotonic() - waiting[0] > self.args.timeout + 15:
            raise NoConfirm()
        self.connection.ioloop.call_later(1, self.check_confirms_in_time)

    def so_far(self):
        """What the broker has of the input: which lines, and where to resume."""
        first = self.flight[0][0] if self.flight else self.next
        fates = [(list(range(1, first)), "sent and confirmed")]
        for fate, has in [("sent and confirmed too", lambda got: got == "confirmed"),
                          ("not in the queue (refused)", lambda got: isinstance(got, Exception)),
                          ("may or may not be in the queue", lambda got: got is None)]:
            fates.append(([n for n, _, got, _ in self.flight if has(got)], fate))
        told = ", ".join(f"{line_ranges(numbers)} {fate}" for numbers, fate in fates if numbers)
        return f"{told or 'nothing was sent'}; resume from line {first:,}"


def line_ranges(numbers):
    """'lines 1-4,500, 4,502' for [1, 2, ... 4500, 4502]."""
    spans = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    word = "line" if len(numbers) == 1 else "lines"
    return word + " " + ", ".join(f"{a:,}" if a == b else f"{a:,}-{b:,}" for a, b in spans)


if __name__ == "__main__":
    sys.exit(amqp_cli.run(main, explain_send))
