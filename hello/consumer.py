"""receive.py's bookkeeping: what the consumer remembers from one message to the next.
An ack goes as soon as its message's work is done: a dying worker gives back only the rest.

- taken: messages taken for good, which --count counts. From a queue, once the broker answered
  the ack (AMQP answers no ack, but answers a channel's frames in order: the basic_qos sent
  after it does); an ack lost with its connection brings the message back, taken then.
  From a stream, which keeps its messages, once shown.
- offset: in a stream, where the next subscription starts: just after the last message
  shown, even if the first started at next, last or 10m.
- cancelled: the broker ended the subscription (queue deleted; 4.3's consumer timeout).
- delay: seconds before the next reconnect; 0 while subscribed, None before the first
  subscription (a failure then is an error, not a reason to connect again).
"""
import argparse
import re
import sys
import time
from datetime import datetime, timedelta

from pika import exceptions

from hello.errors import CannotConnect, Exit, Failure, Interrupted, in_words, note


class Consumer:
    def __init__(self, args):
        self.args, self.taken, self.offset = args, 0, args.offset or "first"
        self.cancelled, self.delay = False, None

    def subscribe(self, channel):
        """Set up a new channel; returns basic_consume's other arguments."""
        if self.delay:
            note("reconnected")
        self.delay, self.cancelled, args = 0, False, self.args
        channel.add_on_cancel_callback(self.on_cancel)
        # --count: the rest stay in the queue. A stream gives more only as we ack.
        self.acks = args.ack or args.count is not None or args.stream
        # --count on a queue takes one message at a time, acked and counted one by one: each
        # ack lets one more come, so that the broker never sends one too many.
        self.one_by_one = bool(args.count) and not args.stream
        if self.acks:  # at most this many unacknowledged: 1 = strictly fair dispatch
            channel.basic_qos(prefetch_count=1 if self.one_by_one else args.prefetch)
        if not args.stream:
            return {"auto_ack": not self.acks}
        where, self.offset = self.offset, point_in_time(self.offset)
        return {"auto_ack": False, "arguments": {"x-stream-offset": where}}

    def wants(self, properties):
        """False for what a stream's chunk brings after the Nth message."""
        if self.args.stream:
            if self.taken == self.args.count:
                return False
            self.offset = properties.headers["x-stream-offset"] + 1
        return True

    def write_raw(self, body):
        sys.stdout.buffer.write(body + b"\n")
        sys.stdout.flush()

    def worked(self, ch, method):
        """After the callback's print: the work, then the ack."""
        if self.args.work:
            ch.connection.sleep(self.args.work)  # unlike time.sleep, keeps heartbeats going
        if not ch.is_open:  # closed during the work (a consumer timeout): start_consuming
            return  # raises the broker's reason
        if self.args.stream:
            self.taken += 1
            ch.basic_ack(delivery_tag=method.delivery_tag)
            if self.taken == self.args.count:  # after the rest of the chunk
                ch.connection.call_later(0, ch.stop_consuming)
        elif self.one_by_one and self.taken + 1 == self.args.count:
            # The last: after a cancel the broker sent during the work, if any, is seen.
            ch.connection.call_later(0, lambda: self.take(ch, method, last=True))
        elif self.one_by_one:
            self.take(ch, method)
        elif self.acks:
            ch.basic_ack(delivery_tag=method.delivery_tag)

    def take(self, ch, method, last=False):
        """--count on a queue: the ack, then the message counts once the broker answered."""
        if last:
            if self.cancelled or not ch.is_open:  # start_consuming says why
                return
            ch.basic_cancel(method.consumer_tag)  # nothing more comes
        ch.basic_ack(delivery_tag=method.delivery_tag)
        ch.basic_qos(prefetch_count=1)  # answers the ack
        self.taken += 1

    def on_cancel(self, method_frame):
        self.cancelled = True

    def finish(self, connection):
        """start_consuming returned: --count was reached, or the broker cancelled us."""
        if not self.cancelled:
            return connection.close()
        ended = f"the broker ended the subscription to queue {self.args.queue!r}"
        try:
            connection.channel().queue_declare(queue=self.args.queue, passive=True)
        except exceptions.ChannelClosedByBroker as error:
            if lost_connection(error):  # a stream's node is down: connect again
                raise
            raise Failure(f"{ended}: the queue was deleted") from None
        # A queue that is still there cancels a consumer with unacked messages when its
        # consumer timeout runs out (RabbitMQ 4.3, quorum queues).
        raise Failure(self.timed_out() if self.acks and not self.args.stream else ended)

    def timed_out(self):
        return (f"the broker took back what was not acknowledged within the consumer_timeout "
                f"of queue {self.args.queue!r} (--work too long?); it is back in the queue")

    def wait_to_reconnect(self, error):
        """After a lost connection: wait a little longer each time, then go on."""
        if isinstance(error, exceptions.ChannelClosedByBroker) and re.match(
                "PRECONDITION_FAILED - delivery acknowledgement on channel [0-9]+ timed out",
                error.reply_text):  # RabbitMQ before 4.3
            raise Failure(self.timed_out()) from None
        if self.args.count and self.taken == self.args.count:  # lost as it closed: done
            raise Exit(0, None)
        if self.delay is None or not lost_connection(error):
            raise error
        if not self.delay:
            note(f"{in_words(error)}; reconnecting")
        self.delay = min(2 * self.delay or 0.5, 10)
        time.sleep(self.delay)


def lost_connection(error):
    """A restart, a frozen broker or a network failure, which connecting again can mend."""
    if isinstance(error, exceptions.ConnectionClosedByBroker):
        # 320 CONNECTION_FORCED: shutting down; a bare 541: a stream just after a restart.
        return error.reply_code == 320 or (error.reply_code, error.reply_text) == (
            541, "INTERNAL_ERROR")
    if isinstance(error, exceptions.ChannelClosedByBroker):  # a stream, just after a restart
        return re.fullmatch("NOT_FOUND - home node .* is down or inaccessible|PRECONDITION_FAILED"
                            " - stream queue .* does not have a running replica on the local node",
                            error.reply_text, re.DOTALL) is not None
    return isinstance(error, (CannotConnect, exceptions.AMQPConnectionError))


def stream_offset(text):
    """--offset: first, last, next, an age (the broker reads 10m itself), a number or a time."""
    if text in ("first", "last", "next") or re.fullmatch(r"[0-9]+[YMDhms]", text):
        return text
    if re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)  # pika encodes it as a 64-bit long only above 2**31
    try:  # an ISO 8601 time; without a time zone, local time
        return datetime.fromisoformat(re.sub("Z$", "+00:00", text)).astimezone()
    except ValueError:
        raise argparse.ArgumentTypeError("first, last, next, an offset, an ISO 8601 time "
                                         f"or an age like 10m; not {text!r}") from None


def point_in_time(offset):
    """A stream offset relative to now (next, last, an age such as 10m) as a fixed time."""
    age = re.fullmatch(r"([0-9]+)([YMDhms])", str(offset))
    if offset not in ("next", "last") and not age:
        return offset
    unit = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = int(age.group(1)) * unit[age.group(2)] if age else 0
    return datetime.now().astimezone() - timedelta(seconds=seconds)


def explain(error):
    """receive.py's words for an error: (exit status, line)."""
    if isinstance(error, (BrokenPipeError, Interrupted)):  # | head, Ctrl+C, SIGTERM
        return 0, None
    if isinstance(error, OSError) and not isinstance(error, ConnectionError):
        return 1, f"error: cannot write the output: {error.strerror or error}"
    return 1, f"error: {in_words(error)}"
