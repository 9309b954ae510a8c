"""What send.py and receive.py add to the blog's lines, one concern a module.

    options.py    the command line: options, URLs, pika's parameters
    errors.py     connecting's words, the error boundary, the words for what went wrong
    queues.py     the blog's queue_declare refused by today's brokers: what the queue is
    sending.py    send.py's one message: its confirm, its deadline, what the broker has of it
    pipeline.py   send.py -: each line of stdin a message, many awaiting confirms at once
    consumer.py   receive.py's bookkeeping: acks, --count, streams, reconnecting

The scripts import these, never the reverse. This file needs no pika (a Python without it
is told what to do); imported first, it makes Ctrl+C quiet from the scripts' first line on.
"""
import os
import sys

try:  # Ctrl+C ends the script quietly from here on, until errors.run() takes over
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
except KeyboardInterrupt:  # it came before that took effect: end as it would have then
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)


def no_pika(script):
    """The line for a Python without pika, pointing at what works in this checkout."""
    import sysconfig  # only here: it takes longer to import than the rest of this file

    venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv")
    if os.path.exists(os.path.join(venv, "bin", "python")) \
            and os.path.realpath(sys.prefix) != os.path.realpath(venv):
        fix = f"use the project's .venv: source .venv/bin/activate, or .venv/bin/python {script}"
    elif sys.prefix != sys.base_prefix or not os.path.exists(
            os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")):
        fix = "run: pip install -r requirements.txt"
    else:  # Debian's own Python: its pip refuses (externally-managed-environment)
        fix = ("run: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt, "
               "then: source .venv/bin/activate")
    return f"{script}: error: pika is missing; {fix}"


def shown(body):
    """The body as the blog shows it: text if it is UTF-8, else the raw bytes."""
    try:
        return repr(body.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(body)
