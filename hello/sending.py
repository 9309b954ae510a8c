"""send.py's one message: the deadline for its confirm, and what the broker has of it.

`fate`, the one piece of state, is what the broker has of the message, in the error line's
words: NOT_SENT until confirm_deadline() is entered (the publish starts), UNSURE while the
publish waits for its confirm, CONFIRMED once it returned. Nothing else changes it."""
import contextlib
import signal

from pika import exceptions

from hello import errors

NOT_SENT, UNSURE, CONFIRMED = ("nothing was sent", "the message may or may not be in the queue",
                               "the message was sent and confirmed")
fate = NOT_SENT
EXTRA = 15  # seconds a confirm may take beyond --timeout
ALARM = hasattr(signal, "setitimer")  # not on Windows, which has no SIGALRM


class NoConfirm(errors.Abort):
    """No confirm in time: raised by the alarm's signal handler."""


@contextlib.contextmanager
def confirm_deadline(timeout):
    """Around basic_publish: a quorum queue cut off from its majority never confirms, and
    pika alone would wait as long as it takes."""
    global fate
    fate = UNSURE
    if ALARM:
        signal.signal(signal.SIGALRM, no_confirm_in_time)
        signal.setitimer(signal.ITIMER_REAL, timeout + EXTRA)
    try:
        yield
        fate = CONFIRMED
    finally:
        if ALARM:
            signal.setitimer(signal.ITIMER_REAL, 0)


def no_confirm_in_time(signum, frame):
    if fate == UNSURE:  # else the confirm came just in time
        raise NoConfirm()


def explain(error):
    """send.py's words for an error about its one message: (exit status, line)."""
    if fate == CONFIRMED:  # nothing can unsend it; sending again duplicates
        if isinstance(error, errors.Interrupted):
            return error.status, f"interrupted; {CONFIRMED}"
        why = f"its ' [x] Sent' line could not be written ({error.strerror})" \
            if isinstance(error, OSError) else errors.in_words(error)
        return 0, f"note: {CONFIRMED}, but {why}"
    # A nack, a return, a closed channel: the broker said no to it.
    refused = fate == UNSURE and isinstance(error, exceptions.AMQPChannelError)
    return failed(error, "the message is not in the queue" if refused else fate)


def failed(error, so_far, what="the message", blocked="a resource alarm: low on memory or disk"):
    """(exit status, line) for an error, with so_far: what the broker has."""
    if isinstance(error, errors.Interrupted):
        return error.status, f"interrupted; {so_far}"
    if isinstance(error, NoConfirm):
        why = f"no confirm from the broker within --timeout + {EXTRA} s"
    elif isinstance(error, exceptions.NackError):
        why = (f"the broker refused {what} (nack): the queue is full and rejects new ones, "
               "or it is a quorum queue electing a leader")
    elif isinstance(error, exceptions.UnroutableError):
        why = f"the broker could not route {what} to the queue: was it deleted just now?"
    elif isinstance(error, exceptions.ConnectionBlockedTimeout):
        why = f"the broker blocked publishers ({blocked}) for longer than --timeout"
    else:
        why = errors.in_words(error)
    return 1, f"error: {why}; {so_far}"
