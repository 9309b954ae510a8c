"""send.py -: each line of stdin a message, up to WINDOW lines (or BYTES) awaiting their
confirms at once (one round trip a line would cap a broker 10 ms away at 90 lines/s), on a
SelectConnection, which keeps heartbeats going while a thread waits for stdin.

State, changed only on pika's I/O loop (the reader thread only puts into `stdin`):
- flight: lines published and not yet printed, in input order (delivery tag = line number).
  `answer` is None until the broker's: CONFIRMED, or a nack or return (an exception).
  Confirmed lines leave from the front, printed.
- read: lines from stdin not yet published; end: stdin has no more.
- stop: the error that stops publishing, None while all goes well. The lines in flight are
  still waited for, so that the last line says exactly what the broker has.
- quiet_since: the broker's last answer, or a line sent while none waited. A line's clock
  starts once the lines before it are answered: no answer for --timeout + 15 s is a lost confirm.
"""
import collections
import contextlib
import dataclasses
import itertools
import os
import queue
import re
import threading
import time

import pika
from pika import exceptions
from pika.adapters.select_connection import IOLoop

from hello import errors, sending, shown

CONFIRMED = "confirmed"


class StdoutFailed(errors.Failure):
    pass


@dataclasses.dataclass
class Line:
    number: int
    body: bytes
    answer: object = None


class Pipeline:
    WINDOW, BYTES = 1000, 16 * 2**20

    def __init__(self, args, declared_on):
        with contextlib.suppress(exceptions.AMQPError):  # its job, declaring, is done
            declared_on.close()
        self.args, self.blocked = args, "a resource alarm"
        self.stdin = queue.Queue(16)  # lists of lines; the reader reads no further ahead
        self.read, self.flight = collections.deque(), collections.deque()
        self.end, self.stop, self.next, self.bytes, self.returned = False, None, 1, 0, 0
        self.connection = self.connect_error = None
        self.quiet_since = time.monotonic()
        self.ioloop = IOLoop()
        pika.SelectConnection.create_connection(args.parameters, self.on_connected,
                                                custom_ioloop=self.ioloop)

    def send(self):
        try:
            self.ioloop.start()
            if self.connect_error:
                with errors.connecting(self.args.parameters):
                    raise self.connect_error
            self.print_confirmed()  # what is left in flight is not confirmed, or stdout failed
            confirmed = all(line.answer == CONFIRMED for line in self.flight)
            if not (self.end and not self.read and confirmed):
                raise self.stop or errors.Failure("the connection closed early")
        except (Exception, errors.Abort) as error:
            refused = [line.number for line in self.flight if isinstance(line.answer, Exception)]
            what = f"line {refused[0]:,}" if refused else "a line"
            raise errors.Exit(*sending.failed(error, self.so_far(), what, self.blocked)) \
                from error
        if self.stop:  # the close failed: the lines are safe, sending again duplicates
            errors.note(f"every line was sent and confirmed, but {errors.in_words(self.stop)}")
        elif self.next == 1:
            errors.note("stdin was empty: nothing sent")

    def read_stdin(self):
        """The reader thread. os.read: a thread blocked in sys.stdin would hold its lock at exit."""
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
            self.hand_over(errors.Failure(f"cannot read stdin ({error.strerror})"))

    def hand_over(self, item):
        self.stdin.put(item)
        if self.stdin.qsize() == 1:  # else the loop has a wake-up to come
            self.ioloop.add_callback_threadsafe(self.pump)

    # pika's I/O handlers call these and would swallow an error: they take note, pump() acts.

    def on_connected(self, connection_or_error):
        if isinstance(connection_or_error, BaseException):
            self.connect_error = connection_or_error
            return self.ioloop.stop()
        self.connection = connection_or_error
        self.connection.add_on_close_callback(self.on_closed)
        self.connection.add_on_connection_blocked_callback(self.on_blocked)
        self.connection.channel(on_open_callback=self.on_channel)

    def on_channel(self, channel):
        self.channel = channel
        channel.add_on_close_callback(self.on_closed)
        channel.add_on_return_callback(self.on_return)
        channel.confirm_delivery(self.on_confirm, callback=self.on_confirming)

    def on_confirming(self, frame):
        threading.Thread(target=self.read_stdin, daemon=True).start()
        self.ioloop.call_later(1, self.check_deadline)

    def on_confirm(self, frame):
        """An ack or a nack, for one line or (multiple) every line up to it."""
        tag, multiple = frame.method.delivery_tag, frame.method.multiple
        answer = CONFIRMED if isinstance(frame.method, pika.spec.Basic.Ack) else \
            exceptions.NackError([])
        covered = [line for line in self.flight if line.answer is None
                   and (line.number == tag or multiple and line.number < tag)]
        # A return comes just before the ack of its message, and a queue deleted under
        # us returns every line from one on: the returned are the last ones covered.
        first_returned, self.returned = len(covered) - self.returned, 0
        for i, line in enumerate(covered):
            line.answer = exceptions.UnroutableError([]) if i >= first_returned else answer
            if isinstance(line.answer, Exception):
                self.stop = self.stop or line.answer
        self.quiet_since = time.monotonic()
        self.ioloop.add_callback_threadsafe(self.pump)

    def on_return(self, channel, method, properties, body):
        self.returned += 1

    def on_blocked(self, connection, frame):
        self.blocked = frame.method.reason

    def on_closed(self, connection_or_channel, reason):
        if not isinstance(reason, (exceptions.ConnectionClosedByClient,
                                   exceptions.ChannelClosedByClient)):
            self.stop = self.stop or reason
            self.refused_by(reason)
        if self.connection.is_closed:
            self.ioloop.stop()
        elif self.connection.is_open:
            self.connection.close()

    def refused_by(self, closed):
        """A channel closed for a message too large: the first waiting line of that size and
        the ones sent after it are not in the queue (the lines before it may be)."""
        too_large = re.match(r"PRECONDITION_FAILED - message size ([0-9]+) is larger",
                             getattr(closed, "reply_text", ""))
        if too_large:
            size = int(too_large.group(1))
            waiting = (line for line in self.flight if line.answer is None)
            for line in itertools.dropwhile(lambda line: len(line.body) != size, waiting):
                line.answer = closed

    def pump(self):
        """Print what the broker confirmed, publish what stdin gave, close when done."""
        self.print_confirmed()
        while not self.stop and self.connection.is_open and len(self.flight) < self.WINDOW \
                and (self.bytes < self.BYTES or not self.flight):
            body = self.take_line()
            if body is None:
                break  # the reader pumps again when it has more
            if self.answered():
                self.quiet_since = time.monotonic()
            self.channel.basic_publish('', self.args.queue, body, mandatory=True,
                                       properties=self.args.properties)
            self.flight.append(Line(self.next, body))
            self.bytes += len(body)
            self.next += 1
        if (self.stop or self.end and not self.read) and self.connection.is_open \
                and self.answered():
            self.connection.close()  # done, or stopped early with every answer in

    def print_confirmed(self):
        """The ' [x] Sent' lines, in input order, until stdout fails."""
        while self.flight and self.flight[0].answer == CONFIRMED \
                and not isinstance(self.stop, StdoutFailed):
            try:
                print(f" [x] Sent {shown(self.flight[0].body)}")
            except OSError as error:
                self.stop = StdoutFailed(f"stdout failed ({error.strerror})")
                return
            self.bytes -= len(self.flight.popleft().body)

    def take_line(self):
        """The next line of stdin, or None: none yet, no more, or stdin failed."""
        while not self.read and not self.end and not self.stop:
            try:
                item = self.stdin.get_nowait()
            except queue.Empty:
                return None
            if isinstance(item, list):
                self.read.extend(item)
            else:  # the end of stdin (None), or why it could not be read
                self.end, self.stop = item is None, item
        return self.read.popleft() if self.read and not self.stop else None

    def check_deadline(self):
        late = time.monotonic() - self.quiet_since > self.args.timeout + sending.EXTRA
        if late and not self.answered():
            raise sending.NoConfirm()
        self.ioloop.call_later(1, self.check_deadline)

    def answered(self):
        """Every line in flight has the broker's answer."""
        return all(line.answer is not None for line in self.flight)

    def so_far(self):
        """What the broker has of the input: which lines (as spans of numbers), and where
        to resume: the first line not confirmed."""
        resume = next((line.number for line in self.flight if line.answer != CONFIRMED),
                      self.next)
        fates = {"sent and confirmed": [[1, resume - 1]] if resume > 1 else [],
                 "sent and confirmed too": [], "not in the queue (refused)": [],
                 "may or may not be in the queue": []}
        for line in self.flight:
            if line.number < resume:
                continue
            spans = fates["may or may not be in the queue" if line.answer is None else
                          "sent and confirmed too" if line.answer == CONFIRMED else
                          "not in the queue (refused)"]
            if spans and spans[-1][1] == line.number - 1:
                spans[-1][1] = line.number
            else:
                spans.append([line.number, line.number])
        told = ", ".join(f"{in_lines(spans)} {words}" for words, spans in fates.items() if spans)
        return f"{told or 'nothing was sent'}; resume from line {resume:,}"


def in_lines(spans):
    """'lines 1-4,500, 4,502' for [[1, 4500], [4502, 4502]]."""
    word = "line" if len(spans) == 1 and spans[0][0] == spans[0][1] else "lines"
    return f"{word} " + ", ".join(f"{a:,}" if a == b else f"{a:,}-{b:,}" for a, b in spans)
