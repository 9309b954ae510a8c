"""The blog's queue_declare on today's brokers, which may refuse it: RabbitMQ 4.3's upstream
default refuses non-durable queues (541, closing the connection); any broker refuses a
declaration that differs from the existing queue (406, closing the channel). Then the queue
is declared again with the settings the broker names until it accepts: they tell its kind."""
import re

import pika
from pika import exceptions

from hello.errors import Failure, connecting, note

FLAGS = ("durable", "auto_delete")  # queue_declare's own settings; the rest are arguments
TYPES = {"longstr": str, "shortstr": str, "bool": lambda text: text == "true", "float": float,
         "double": float, **dict.fromkeys(["byte", "short", "signedint", "long", "unsignedbyte",
                                          "unsignedshort", "unsignedint", "signedshort"], int)}


def declared_otherwise(refusal, connection, args):
    """After main()'s queue_declare was refused: the connection and channel to go on with.
    Sets args.stream when the queue turns out to be a stream."""
    asked = settings = {"durable": args.durable, **(args.arguments or {})}
    if isinstance(refusal, exceptions.ConnectionClosedByBroker) and refusal.reply_code == 541 \
            and re.match("INTERNAL_ERROR - Feature `?transient_nonexcl_queues`? is deprecated",
                         refusal.reply_text):
        note(f"this RabbitMQ refuses non-durable queues; declaring {args.queue!r} durable")
        with connecting(args.parameters):
            connection = pika.BlockingConnection(args.parameters)
        settings = {**asked, "durable": True}
        refusal = declare(connection, args.queue, settings)
        if refusal is None:
            return connection, connection.channel()
    if not (isinstance(refusal, exceptions.ChannelClosedByBroker) and refusal.reply_code == 406):
        raise refusal
    found = existing(connection, args.queue, dict(settings), refusal)
    use_as_it_is(args, asked, found)
    return connection, connection.channel()


def declare(connection, queue, settings):
    """Declare the queue with these settings on a new channel: None, or the refusal."""
    flags = {name: settings[name] for name in FLAGS if name in settings}
    arguments = {name: value for name, value in settings.items() if name not in FLAGS}
    try:
        connection.channel().queue_declare(queue=queue, arguments=arguments or None, **flags)
    except exceptions.ChannelClosedByBroker as refusal:
        if refusal.reply_code != 406:
            raise
        return refusal
    return None


def existing(connection, queue, settings, refusal):
    """The existing queue's settings: each 406 names one that differs and its current value."""
    for _ in range(20):  # a queue has fewer settings than that
        name, value = inequivalent(refusal.reply_text, settings)
        if value is None:
            settings.pop(name, None)
        else:
            settings[name] = value
        refusal = declare(connection, queue, settings)
        if refusal is None:
            return settings
    raise Failure(f"the broker refused: 406 {refusal.reply_text}")


def inequivalent(reply, settings):
    """("durable", True) from "PRECONDITION_FAILED - inequivalent arg 'durable' for queue
    'q' in vhost '/': received 'false' but current is 'true'"; None for "current is none"."""
    found = re.fullmatch(r"PRECONDITION_FAILED - inequivalent arg '([^']*)' for queue .* "
                         r"in vhost .*: received .* but current is (none|the value '(.*)' of "
                         r"type '(\w+)'|'(.*)')", reply, re.DOTALL)
    if not found or found.group(4) and found.group(4) not in TYPES:
        raise Failure(f"the broker refused: 406 {reply}")
    name, current, typed, kind, untyped = found.groups()
    if current == "none":
        return name, None
    if kind:
        return name, TYPES[kind](typed)
    if untyped in ("true", "false"):
        return name, untyped == "true"
    return name, type(settings.get(name, ""))(untyped)  # the type we sent it as


def use_as_it_is(args, asked, found):
    """The queue that exists is used, unless an option needs what it lacks."""
    kind = found.get("x-queue-type", "classic")
    option = "--quorum" if args.quorum else "--stream" if args.stream else "--durable"
    if args.durable and not found["durable"] or option != "--durable" and kind != option[2:]:
        lacks = {"--quorum": "a quorum queue", "--stream": "a stream"}.get(option, "durable")
        raise Failure(f"queue {args.queue!r} exists and is not {lacks}, which {option} needs; "
                      "use another --queue, or delete it (local broker: "
                      f"broker/rabbitmqctl delete_queue {args.queue})")
    args.stream = kind == "stream"
    differ = [f"{name} is '{str(value).lower() if isinstance(value, bool) else value}'"
              for name, value in found.items() if asked.get(name) != value]
    note(f"queue {args.queue!r} is a stream; using it as one, as --stream does" if args.stream
         else f"queue {args.queue!r} already exists with other settings ({', '.join(differ)}); "
         "using it as it is")
