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

NOT_SENT, UNSURE, CONFIRMED = ("nothing was sent", "the message may or may not be in the queue",
                               "the message was sent and confirmed")
fate = NOT_SENT  # what the broker has of the message: the error line says it


def main():
    global fate
    args = parse_args()
    connection = amqp_cli.connect(args.parameters)
    channel = connection.channel()

    connection, channel, _ = amqp_cli.declare_queue(connection, channel, args)

    if args.message == ["-"]:  # each line of stdin a message, many per round trip
        return Lines(args, connection).send()
    channel.confirm_delivery()  # exit 0: the broker has it (on disk with --durable)
    fate = UNSURE
    with alarm_clock(args.timeout):  # pika alone waits for a confirm as long as it takes
        channel.basic_publish(exchange='', routing_key=args.queue, body=args.body,
                              properties=PERSISTENT if args.durable else None,
                              mandatory=True)
    fate = CONFIRMED
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
    if args.message == ["-"] and sys.stdin is None:  # fd 0 would be the broker's socket
        parser.error("- reads stdin, which is closed")
    # os.fsencode gives back the very bytes of the command line.
    args.body = os.fsencode(" ".join(args.message)) if args.message else b"Hello World!"
    return args


class NoConfirm(amqp_cli.Abort):
    """No confirm in time: raised by the alarm clock's signal handler."""


@contextlib.contextmanager
def alarm_clock(timeout):
    """A quorum queue cut off from its majority never confirms: give up after pika's
    own, more exact bounds (not on Windows, which has no SIGALRM)."""
    if not hasattr(signal, "setitimer"):
        yield
        return
    signal.signal(signal.SIGALRM, no_confirm_in_time)
    signal.setitimer(signal.ITIMER_REAL, timeout + 15)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def no_confirm_in_time(signum, frame):
    if fate == UNSURE:  # else the confirm came just in time
        raise NoConfirm()


def explain_send(error, so_far=None, what="the message",
                 blocked="a resource alarm: low on memory or disk"):
    """send.py's words for an error: (exit status, line). so_far: what the broker has."""
    if so_far is None and fate == CONFIRMED:  # nothing can unsend it; sending again duplicates
        if isinstance(error, amqp_cli.Interrupted):
            return error.status, f"interrupted; {CONFIRMED}"
        why = f"its ' [x] Sent' line could not be written ({error.strerror})" \
            if isinstance(error, OSError) else amqp_cli.in_words(error)
        return 0, f"note: {CONFIRMED}, but {why}"
    if so_far is None:  # a nack, a return, a closed channel: the broker said no to it
        refused = fate == UNSURE and isinstance(error, exceptions.AMQPChannelError)
        so_far = "the message is not in the queue" if refused else fate
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


class Line:
    """A line of stdin on its way: the broker's answer is None until it comes."""
    __slots__ = ("number", "body", "sent_at", "answer")

    def __init__(self, number, body):
        self.number, self.body, self.sent_at, self.answer = number, body, time.monotonic(), None


class Lines:
    """send.py -: each line of stdin one message, sent as it comes, up to WINDOW lines
    (or BYTES) awaiting their confirms at once: one round trip per line would cap a
    broker 10 ms away at 90 lines/s. pika's SelectConnection hands over confirms as they
    come, and keeps heartbeats going while stdin is quiet."""
    WINDOW, BYTES = 1000, 16 * 2**20

    def __init__(self, args, declared_on):
        with contextlib.suppress(exceptions.AMQPError):  # its job is done
            declared_on.close()
        self.args = args
        self.stdin = queue.Queue(16)  # lists of lines; the reader reads no further ahead
        self.read = collections.deque()  # lines taken from stdin, not yet published
        self.flight = collections.deque()  # Line, in input order, until printed
        self.bytes = 0  # in flight
        self.returned = 0  # returns not yet matched to lines: their acks follow
        self.next = 1  # the number of the next line to publish
        self.end_of_input = False
        self.failure = None  # why it stops early
        self.blocked = "a resource alarm"
        self.connection = pika.SelectConnection(
            declared_on.params, on_open_callback=self.on_open,
            on_open_error_callback=self.on_closed, on_close_callback=self.on_closed)

    def send(self):
        try:
            self.connection.ioloop.start()
            if self.failure and not self.all_confirmed():
                raise self.failure
            self.pump()  # the last ' [x] Sent' lines, if the connection closed first
        except (Exception, amqp_cli.Abort) as error:
            refused = [line.number for line in self.flight if isinstance(line.answer, Exception)]
            what = f"line {refused[0]:,}" if refused else "a line"
            raise amqp_cli.Exit(*explain_send(error, self.so_far(), what, self.blocked)) \
                from error
        if self.failure:  # the close failed: the lines are safe, sending again duplicates
            why = amqp_cli.in_words(self.failure)
            amqp_cli.note(f"every line was sent and confirmed, but {why}")
        elif self.next == 1:
            amqp_cli.note("stdin was empty: nothing sent")

    def all_confirmed(self):
        return self.end_of_input and not self.read and \
            all(line.answer == "confirmed" for line in self.flight)

    def read_stdin(self):
        """On a thread of its own. os.read on fd 0: sys.stdin may be None (closed), and a
        daemon thread blocked in it would hold its lock at exit."""
        partial = []  # the pieces of a line longer than one read
        try:
            while chunk := os.read(0, 65536):
                *lines, last = chunk.split(b"\n")
                if lines:
                    lines[0] = b"".join([*partial, lines[0]])
                    self.hand_over(lines)
                    partial = []
                partial.append(last)
            if b"".join(partial):  # a last line without a newline
                self.hand_over([b"".join(partial)])
            self.hand_over(None)
        except OSError as error:
            self.hand_over(amqp_cli.Failure(f"cannot read stdin ({error.strerror})"))

    def hand_over(self, item):
        self.stdin.put(item)
        # One wake-up is enough while the loop has not yet taken the one before.
        if self.stdin.qsize() == 1:
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
        """An ack or a nack, for one line or (multiple) every line up to it."""
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        answer = "confirmed" if isinstance(frame.method, pika.spec.Basic.Ack) else \
            exceptions.NackError([])
        covered = []
        for line in self.flight:  # the delivery tag is the line number
            if line.number > tag:
                break
            if line.answer is None and (line.number == tag or multiple):
                covered.append(line)
        # A return comes just before the ack of its message, and a queue deleted under
        # us returns every line from one on: the returned are the last ones covered.
        for line in covered[max(0, len(covered) - self.returned):] if self.returned else []:
            line.answer = exceptions.UnroutableError([])
        self.returned = 0
        for line in covered:
            line.answer = line.answer or answer
            if isinstance(line.answer, Exception):
                self.failure = self.failure or line.answer
        self.connection.ioloop.call_later(0, self.pump)

    def on_return(self, channel, method, properties, body):
        self.returned += 1

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
        while self.flight and self.flight[0].answer == "confirmed":
            line = self.flight.popleft()
            self.bytes -= len(line.body)
            try:
                print(f" [x] Sent {amqp_cli.shown(line.body)}")
            except OSError as error:
                raise amqp_cli.Failure(f"stdout failed ({error.strerror})") from None
        while not self.failure and self.connection.is_open and len(self.flight) < self.WINDOW \
                and (self.bytes < self.BYTES or not self.flight):
            body = self.take_line()
            if body is None:
                break  # the reader pumps again when it has more
            self.channel.basic_publish('', self.args.queue, body, mandatory=True,
                                       properties=PERSISTENT if self.args.durable else None)
            self.flight.append(Line(self.next, body))
            self.bytes += len(body)
            self.next += 1
        if (self.failure or self.end_of_input and not self.read) and self.connection.is_open \
                and all(line.answer is not None for line in self.flight):
            self.connection.close()  # done, or stopped early with every answer in

    def take_line(self):
        """The next line of stdin, or None: none yet, no more, or stdin failed."""
        while not self.read and not self.end_of_input and not self.failure:
            try:
                item = self.stdin.get_nowait()
            except queue.Empty:
                return None
            if isinstance(item, list):
                self.read.extend(item)
            else:  # the end of stdin (None), or why it could not be read
                self.end_of_input, self.failure = item is None, item
        return self.read.popleft() if self.read and not self.failure else None

    def check_confirms_in_time(self):
        waiting = [line.sent_at for line in self.flight if line.answer is None]
        if waiting and time.monotonic() - waiting[0] > self.args.timeout + 15:
            raise NoConfirm()
        self.connection.ioloop.call_later(1, self.check_confirms_in_time)

    def so_far(self):
        """What the broker has of the input: which lines, and where to resume."""
        resume = next((line.number for line in self.flight if line.answer != "confirmed"),
                      self.next)

        def numbers(has):
            return spans(line.number for line in self.flight
                         if line.number >= resume and has(line.answer))
        fates = [([[1, resume - 1]] if resume > 1 else [], "sent and confirmed"),
                 (numbers(lambda answer: answer == "confirmed"), "sent and confirmed too"),
                 (numbers(lambda answer: isinstance(answer, Exception)),
                  "not in the queue (refused)"),
                 (numbers(lambda answer: answer is None), "may or may not be in the queue")]
        told = ", ".join(f"{in_lines(found)} {words}" for found, words in fates if found)
        return f"{told or 'nothing was sent'}; resume from line {resume:,}"


def spans(numbers):
    """[[1, 4500], [4502, 4502]] for 1, 2, ... 4500, 4502."""
    found = []
    for n in numbers:
        if found and found[-1][1] == n - 1:
            found[-1][1] = n
        else:
            found.append([n, n])
    return found


def in_lines(found):
    """'lines 1-4,500, 4,502' for [[1, 4500], [4502, 4502]]."""
    word = "line" if found == [[found[0][0]] * 2] else "lines"
    return f"{word} " + ", ".join(f"{a:,}" if a == b else f"{a:,}-{b:,}" for a, b in found)


if __name__ == "__main__":
    sys.exit(amqp_cli.run(main, explain_send))
