"""What the scripts remember, checked the way a user meets it (issue 28's categories):
an ack goes when the work is done, --count counts what the broker has, an existing
queue is read as what it is, output that fails is one true line, any input is one line."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import PROJECT, TIMEOUT, one_line_error, proxy, told, wait_until


def test_a_killed_worker_gives_back_only_what_it_had_not_finished(broker):
    """The blog's 消息确认机制 at the default prefetch (10): 1-3 done stay done."""
    broker.send("-", "--queue", "w", stdin=b"1\n2\n3\n4\n5\n")
    worker = broker.start("receive.py", "--queue", "w", "--ack", "--work", "1")
    worker.wait_for_line(" [x] Received '4'")  # the work of 1, 2 and 3 is done

    worker.signal(signal.SIGKILL)  # while it works on 4
    worker.wait()

    again = broker.receive("--queue", "w", "--count", "2")
    assert again.stdout_lines[1:] == [" [x] Received '4' (redelivered)",
                                      " [x] Received '5' (redelivered)"]
    assert broker.message_count("w") == 0


@pytest.fixture
def ack_dropped(broker):
    """A URL for the broker through a proxy that, the first time a client acknowledges,
    drops that ack and cuts the connection: an ack lost with its connection."""
    dropped = threading.Event()
    basic_ack = b"\x00\x3c\x00\x50"  # class 60, method 80 in a method frame

    def passes(data, towards_broker):
        if towards_broker and basic_ack in data and not dropped.is_set():
            dropped.set()
            return None
        return data

    with proxy(broker.port, passes) as url:
        yield url, dropped


def test_count_takes_exactly_n_when_an_ack_is_lost_with_its_connection(broker, ack_dropped):
    url, dropped = ack_dropped
    broker.send("-", stdin=b"first\nsecond\n")

    received = broker.receive("--url", url, "--count", "1")

    assert dropped.is_set()  # the proxy did drop an ack
    assert received.returncode == 0, received.stderr
    assert received.stdout_lines[1::2] == [" [x] Received 'first'",
                                           " [x] Received 'first' (redelivered)"]
    assert broker.bodies() == [b"second"]


@pytest.mark.parametrize("kind, arguments", [
    ("stream", {"x-max-age": "1D", "x-stream-max-segment-size-bytes": 1000000}),
    ("quorum", {"x-max-length": 100, "x-dead-letter-exchange": "dead"}),
])
def test_an_existing_queue_with_its_own_arguments_is_read_as_what_it_is(broker, kind,
                                                                        arguments):
    queue = f"own-{kind}"
    broker.channel().queue_declare(queue, durable=True,
                                   arguments={"x-queue-type": kind, **arguments})
    broker.queues.add(queue)
    assert broker.send(f"--{kind}", "--queue", queue, "one").returncode == 0
    assert broker.send("--queue", queue, "two").returncode == 0  # the plain command

    with_option = broker.receive(f"--{kind}", "--queue", queue, "--count", "1")
    plain = broker.receive("--queue", queue, "--count", "1")

    assert with_option.returncode == 0, with_option.stderr
    assert with_option.stdout_lines[1:] == [" [x] Received 'one'"]
    assert plain.returncode == 0, plain.stderr
    if kind == "stream":  # a stream keeps its messages: read from the first, with a note
        assert plain.stdout_lines[1:] == [" [x] Received 'one'"]
        assert plain.stderr_lines == [f"receive.py: note: queue '{queue}' is a stream; "
                                      "using it as one, as --stream does"]
    else:
        assert plain.stdout_lines[1:] == [" [x] Received 'two'"]
        [note] = plain.stderr_lines
        assert note.startswith(f"receive.py: note: queue '{queue}' already exists with other "
                               "settings (durable is 'true', ") and "x-queue-type is 'quorum'" \
            in note and note.endswith("; using it as it is"), note
        assert broker.message_count(queue) == 0


def test_stdout_closed_from_the_start(broker):
    """`>&-`: send.py still sends and says the line could not be written; receive.py
    takes nothing; -h says the help could not be written. One line each, no traceback."""
    def closed_stdout(*args):
        return subprocess.run([sys.executable, PROJECT / args[0], *args[1:]], env=broker.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT, preexec_fn=lambda: os.close(1))

    sent = closed_stdout("send.py", "unseen")
    assert (sent.returncode, sent.stderr.splitlines()[-1]) == (0, (
        "send.py: note: the message was sent and confirmed, but its ' [x] Sent' line could "
        "not be written (stdout is closed)"))
    received = closed_stdout("receive.py")
    assert (received.returncode, received.stderr) == (
        1, "receive.py: error: cannot write the output: stdout is closed\n")
    assert broker.bodies() == [b"unseen"]
    for script in ["send.py", "receive.py"]:
        helped = closed_stdout(script, "-h")
        assert (helped.returncode, helped.stderr) == (
            1, f"{script}: error: cannot write the help: stdout is closed\n")


def test_send_lines_into_head_says_exactly_where_to_resume(broker):
    """`seq 1 20000 | send.py - | head -1`: the lines in flight are waited for, so the
    resume line is the queue's depth plus one: resuming duplicates nothing."""
    result = subprocess.run(
        f"seq 1 20000 | {sys.executable} {PROJECT / 'send.py'} --queue head - | head -1",
        shell=True, env=broker.env(), capture_output=True, text=True, timeout=TIMEOUT)
    broker.queues.add("head")

    assert result.stdout == " [x] Sent '1'\n"
    [line] = [line for line in result.stderr.splitlines() if ": note: " not in line]
    assert "Traceback" not in result.stderr
    resume = int(re.search(r"resume from line ([0-9,]+)$", line).group(1).replace(",", ""))
    assert line == (f"send.py: error: stdout failed (Broken pipe); lines 1-{resume - 1:,} sent "
                    f"and confirmed; resume from line {resume:,}")
    assert broker.message_count("head") == resume - 1


def test_a_user_name_without_a_password_is_a_usage_line(no_broker):
    line = one_line_error(no_broker.send("--url", "amqp://guest@127.0.0.1/"), status=2)

    assert line == ("send.py: error: bad --url 'amqp://127.0.0.1/': a user name without a "
                    "password; write user:password@host")
    assert no_broker.connections() == 0


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_ctrl_c_from_the_first_instant_is_never_a_traceback(no_broker, script):
    """Interrupted at each step of starting: importing pika and the rest, parsing, then
    connecting (to a port that never answers): the script ends at once, with no
    traceback. The steps are told by -X importtime's lines, from the import of signal,
    the first thing the scripts do (Python's own start-up is before the script)."""
    for more_lines in [0, 1, 2, 5, 10, 20, 40, 70, 100, "connecting"]:
        process = subprocess.Popen([sys.executable, "-X", "importtime", PROJECT / script],
                                   env=no_broker.env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                    signal.SIG_DFL))
        seen = []
        while not any(line.rstrip().endswith(b" signal") for line in seen):
            seen.append(process.stderr.readline())
        if more_lines == "connecting":  # the port listens and never answers
            before = no_broker.connections()
            wait_until(lambda before=before: no_broker.connections() > before, TIMEOUT,
                       "the script to connect")
        else:  # the scripts import more than 100 modules after signal
            seen += [process.stderr.readline() for _ in range(more_lines)]
        process.send_signal(signal.SIGINT)
        output = b"".join(seen) + process.communicate(timeout=TIMEOUT)[1]
        # receive.py's Ctrl+C is its way to stop: status 0, quietly.
        quiet = 0 if script == "receive.py" else 130
        assert process.returncode in (-signal.SIGINT, quiet), (more_lines, output.decode())
        assert b"Traceback" not in output, output.decode()[-2000:]
        if more_lines == "connecting":  # the script's own ending
            own = [line for line in output.decode().splitlines()
                   if not line.startswith("import time:")]
            assert (process.returncode, own) == (quiet, [] if script == "receive.py" else [
                "send.py: interrupted; nothing was sent"])


def test_a_line_over_the_brokers_limit_is_called_refused(strict_broker):
    """The broker says which message it refused (by its size): that line and the ones
    after it are not in the queue, and the line says so, not "may or may not"."""
    lines = b"small-1\nsmall-2\n" + b"x" * 2000 + b"\nsmall-4\n"

    sent = strict_broker.send("-", stdin=lines)

    line = one_line_error(sent)
    assert "the broker refused: 406 PRECONDITION_FAILED - message size 2000 is larger than " \
        "configured max size 1024" in line, line
    assert told(line, "not in the queue (refused)") == [3, 4], line
    assert set(told(line, "may or may not be in the queue")) <= {1, 2}, line
    confirmed = told(line, "sent and confirmed")
    assert line.endswith(f"resume from line {len(confirmed) + 1}"), line
    in_queue = strict_broker.bodies()
    assert [b"small-%d" % n for n in confirmed] == in_queue[:len(confirmed)]
    assert set(in_queue) <= {b"small-1", b"small-2"}


@pytest.fixture
def slow_link(broker):
    """A URL for the broker through a link that carries 200 KB/s towards it."""
    def passes(data, towards_broker):
        if towards_broker:
            time.sleep(len(data) / 200_000)  # the link's pace, not a wait for an event
        return data

    with proxy(broker.port, passes) as url:
        yield url


@pytest.mark.lanes("rabbitmq3.10")  # the clock is the script's own: one broker is enough
def test_large_lines_on_a_slow_link_are_not_lost_confirms(broker, slow_link):
    """20 lines of 200 KB take 20 s to cross; --timeout 0.5 gives a confirm 15.5 s. Each
    line's clock starts once the lines before it are answered, not when pika buffers it."""
    lines = b"".join(b"%02d" % n + b"." * 200_000 + b"\n" for n in range(1, 21))

    sent = broker.send("--url", slow_link, "--timeout", "0.5", "--queue", "slow", "-",
                       stdin=lines, timeout=120)
    broker.queues.add("slow")

    assert sent.returncode == 0, sent.stderr
    assert len(sent.stdout_lines) == 20
    assert broker.message_count("slow") == 20


@pytest.mark.lanes("rabbitmq3.10")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_wrong_password_from_this_machine_gets_no_remote_login_hint(broker, host):
    """"guest may only log in from localhost" is for a remote host; from this machine
    the password is simply wrong."""
    line = one_line_error(broker.send("--url", f"amqp://guest:wrong@{host}:{broker.port}/"))

    assert line == (f"send.py: error: login refused for user 'guest' on {host}:{broker.port}: "
                    "wrong user name or password; nothing was sent")


@pytest.mark.lanes("rabbitmq3.10", "rabbitmq4.0")  # 4.3 does not time out classic queues
def test_a_consumer_timeout_during_work_without_count_is_named(strict_broker):
    """The broker closes the channel during the work; the ack that follows cannot go,
    and the line says why (not pika's 'Channel is closed')."""
    strict_broker.channel().queue_delete("slow-jobs")
    strict_broker.send("--queue", "slow-jobs", "long job")

    worker = strict_broker.receive("--queue", "slow-jobs", "--ack", "--work", "9", timeout=60)

    line = one_line_error(worker)
    assert "consumer_timeout of queue 'slow-jobs'" in line and "back in the queue" in line
    assert strict_broker.message_count("slow-jobs") == 1


def test_send_lines_whose_own_connection_fails_says_why_in_one_line(broker):
    """send.py - connects again for its pipeline: a failure there is worded like any."""
    headers = []

    def passes(data, towards_broker):
        if towards_broker and data.startswith(b"AMQP"):
            headers.append(data)
        return None if len(headers) > 1 else data  # the second connection is cut at once

    with proxy(broker.port, passes) as url:  # --durable: no lane declares twice (541)
        sent = broker.send("--url", url, "--durable", "-", stdin=b"one\n")

    port = url.rsplit(":", 1)[1].split("/")[0]
    assert one_line_error(sent) == (
        f"send.py: error: cannot connect to 127.0.0.1:{port} (closed during the AMQP "
        "handshake: is it an AMQP port?); nothing was sent; resume from line 1")
