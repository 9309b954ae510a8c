"""What a learner and a developer type on day one, run as they type it: the same command
again and again, --count, an interrupt at each step, URLs as pika takes them."""
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pika
import pytest
from pika.tcp_socket_opts import set_sock_opts

from helpers import PROJECT, TIMEOUT, WAITING, one_line_error, proxy, stray_lines, wait_until

sys.path.insert(0, str(PROJECT))
from hello import options  # noqa: E402  (the scripts' own modules, beside them)


@pytest.mark.parametrize("options", [[], ["--ack"], ["--prefetch", "1"],
                                     ["--ack", "--prefetch", "3"]])
def test_receive_count_1_three_times_takes_one_each_and_none_redelivered(broker, options):
    for word in ["one", "two", "three"]:
        assert broker.send(word).returncode == 0

    for word in ["one", "two", "three"]:
        received = broker.receive("--count", "1", *options)
        assert received.returncode == 0, received.stderr
        assert received.stdout_lines == [WAITING, f" [x] Received '{word}'"]

    assert broker.message_count() == 0


@pytest.mark.parametrize("prefetch", ["1", "2", "10"])
def test_count_leaves_the_rest_as_they_were(broker, prefetch):
    broker.send("-", stdin=b"1\n2\n3\n4\n5\n")

    received = broker.receive("--count", "2", "--prefetch", prefetch)

    assert received.stdout_lines[1:] == [" [x] Received '1'", " [x] Received '2'"]
    channel, rest = broker.channel(), []
    while (got := channel.basic_get("hello", auto_ack=True))[0]:
        rest.append((got[2], got[0].redelivered))
    assert rest == [(b"3", False), (b"4", False), (b"5", False)]


@pytest.mark.parametrize("options", [[], ["--ack"], ["--prefetch", "7"], ["--work", "0.01"]])
def test_count_larger_than_the_prefetch_takes_exactly_n(broker, options):
    broker.send("-", stdin=b"".join(b"m%d\n" % n for n in range(1, 41)))

    received = broker.receive("--count", "30", *options)

    assert received.returncode == 0, received.stderr
    assert received.stdout_lines[1:] == [f" [x] Received 'm{n}'" for n in range(1, 31)]
    channel, rest = broker.channel(), []
    while (got := channel.basic_get("hello", auto_ack=True))[0]:
        rest.append((got[2], got[0].redelivered))
    assert rest == [(b"m%d" % n, False) for n in range(31, 41)]


def test_count_with_ack_acknowledges_each_before_the_next(broker):
    broker.send("-", stdin=b"j1\nj2\nj3\n")
    worker = broker.start("receive.py", "--ack", "--count", "3", "--work", "2")

    worker.wait_for_line(" [x] Received 'j2'")  # j1's work is done
    worker.signal(signal.SIGKILL)  # during j2's work
    worker.wait()

    # j1 was done and stays done; j2 comes back, marked; j3 was never seen.
    again = broker.receive("--count", "2")
    assert again.stdout_lines[1:] == [" [x] Received 'j2' (redelivered)", " [x] Received 'j3'"]


@pytest.mark.parametrize("count", ["1", "2"])
def test_count_on_a_stream_whose_messages_share_one_chunk(broker, count):
    broker.send("-", "--stream", "--queue", "chunk", stdin=b"one\ntwo\nthree\n")

    received = broker.receive("--stream", "--queue", "chunk", "--count", count)

    assert received.returncode == 0, received.stderr
    assert received.stdout_lines[1:] == [f" [x] Received '{word}'"
                                         for word in ["one", "two"][:int(count)]]


def test_a_message_whose_ack_was_lost_with_its_connection_is_taken_again(broker):
    """--count counts what the broker has: the ack never reached it, so the message is
    back, and the run takes it again rather than end one short."""
    broker.send("--durable", "job")
    receiver = broker.start("receive.py", "--durable", "--count", "1", "--work", "5")
    receiver.wait_for_line(" [x] Received 'job'")

    broker.close_connections()
    broker.node.stop()  # during the work, before the ack
    broker.node.start()

    assert receiver.wait() == 0, receiver.stderr
    assert receiver.stdout_lines == [WAITING, " [x] Received 'job'",
                                     WAITING, " [x] Received 'job' (redelivered)"]
    assert broker.message_count("hello") == 0


# -- interrupts at each step: the line says exactly what is known ----------------

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.mark.parametrize("signum, status", SIGNALS)
def test_interrupted_while_connecting(no_broker, signum, status):
    sender = no_broker.start("send.py")
    wait_until(lambda: no_broker.connections() == 1, TIMEOUT, "send.py to connect")

    sender.signal(signum)
    sender.wait()

    assert one_line_error(sender, status) == "send.py: interrupted; nothing was sent"


@pytest.mark.parametrize("signum, status", SIGNALS[:1])  # SIGTERM: at the steps around it
def test_interrupted_while_waiting_for_the_confirm(broker, signum, status):
    broker.channel().queue_declare("hello", durable=True)
    broker.node.ctl("set_vm_memory_high_watermark", "0.0000001")  # the broker blocks publishers
    try:
        sender = broker.start("send.py", "--timeout", "60")
        wait_until(lambda: "blocked" in broker.node.ctl("list_connections", "state").stdout,
                   TIMEOUT, "send.py to be blocked")

        sender.signal(signum)
        sender.wait()
    finally:
        broker.node.ctl("set_vm_memory_high_watermark", "0.4")

    assert one_line_error(sender, status) == (
        "send.py: interrupted; the message may or may not be in the queue")


@pytest.mark.parametrize("signum, status", SIGNALS)
def test_interrupted_after_the_confirm_says_it_was_sent(broker, signum, status):
    read_end, write_end = os.pipe()  # a pipe already full: the ' [x] Sent' line waits
    fcntl.fcntl(write_end, fcntl.F_SETFL, os.O_NONBLOCK)
    try:
        while True:
            os.write(write_end, b"x" * 4096)
    except BlockingIOError:
        fcntl.fcntl(write_end, fcntl.F_SETFL, 0)
    try:
        sender = broker.start("send.py", stdout=write_end)
        wait_until(lambda: open(f"/proc/{sender.process.pid}/wchan").read().endswith("pipe_write"),
                   TIMEOUT, "send.py to write its ' [x] Sent' line")

        sender.signal(signum)
        sender.wait()
    finally:
        os.close(read_end)
        os.close(write_end)

    assert one_line_error(sender, status) == (
        "send.py: interrupted; the message was sent and confirmed")
    assert broker.message_count() == 1


@pytest.fixture
def close_dropped(broker):
    """A URL for the broker through a proxy that drops a connection when the client asks
    to close it: the close fails after everything was sent."""
    def passes(data, towards_broker):
        return None if towards_broker and CONNECTION_CLOSE in data else data

    with proxy(broker.port, passes) as url:
        yield url


CONNECTION_CLOSE = b"\x00\x0a\x00\x32"  # class 10, method 50 in a method frame


@pytest.mark.parametrize("form", [["one"], ["-"]])
def test_a_close_that_fails_after_every_confirm_is_only_a_note(broker, close_dropped, form):
    sent = broker.send("--url", close_dropped, *form, stdin=b"a\nb\n")

    assert sent.returncode == 0, sent.stderr
    assert sent.stderr_lines[-1].endswith("sent and confirmed, but lost the connection to the "
                                          "broker (Transport indicated EOF)")
    assert stray_lines(sent, "but lost the connection") == [], sent.stderr  # that note only
    assert broker.bodies() == ([b"one"] if form == ["one"] else [b"a", b"b"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_receive_ends_quietly_on_ctrl_c_and_sigterm(broker, signum):
    receiver = broker.start("receive.py")
    receiver.wait_for_line(WAITING)

    receiver.signal(signum)

    assert receiver.wait() == 0
    assert broker.no_errors(receiver)


# -- URLs as pika takes them ------------------------------------------------------

@pytest.mark.parametrize("query", ["client_properties={'connection_name':'alice@laptop'}",
                                   "tcp_options={'TCP_KEEPIDLE':60,'TCP_KEEPINTVL':10}"],
                         ids=["@ in a value", "commas in a value"])
def test_a_url_option_pika_takes_alone_and_in_a_list(broker, closed_port, query):
    url = f"{broker.url}?{query}"
    elsewhere = f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F"

    alone = broker.send("--url", url, "alone")
    in_a_list = broker.send(env=broker.env(AMQP_URL=f"{elsewhere},{url}"))

    assert (alone.returncode, in_a_list.returncode) == (0, 0), alone.stderr + in_a_list.stderr
    assert broker.bodies() == [b"alone", b"Hello World!"]


def test_timeouts_in_the_url_win_over_timeout(no_broker):
    url = f"{no_broker.url}?socket_timeout=1&stack_timeout=1"

    sender = no_broker.start("send.py", "--timeout", "600", "--url", url)

    # 1 s each, and Python's start: well inside 8 s. --timeout would wait 600 s, and pika's
    # own defaults (stack_timeout 15 s) more than 8: either would fail here.
    sender.wait(timeout=8)
    assert "no AMQP handshake in time" in one_line_error(sender)


@pytest.mark.parametrize("name", ["current is 'stream'", "x-queue-type",
                                  "durable' but current is 'true"])
def test_queue_names_that_look_like_settings_are_only_names(broker, name):
    broker.channel().queue_declare(name, durable=True)

    sent = broker.send("--queue", name, "plain")
    received = broker.receive("--queue", name, "--count", "1")

    assert sent.returncode == 0 and received.returncode == 0, sent.stderr + received.stderr
    assert received.stdout_lines[1:] == [" [x] Received 'plain'"]
    assert "is a stream" not in received.stderr
    assert "already exists with other settings (durable is 'true')" in sent.stderr


def test_a_stream_read_from_next_goes_on_after_a_reconnect(broker):
    receiver = broker.start("receive.py", "--stream", "--queue", "events", "--offset", "next")
    receiver.wait_for_line(WAITING)
    receiver.signal(signal.SIGSTOP)  # it reconnects only once the message is written
    try:
        broker.close_connections()
        broker.node.stop()
        broker.node.start()
        broker.wait_until(lambda: stream_is_back(broker, "events"), "the stream after the restart")
        sent = broker.send("--stream", "--queue", "events", "written meanwhile")
        assert sent.returncode == 0, sent.stderr
    finally:
        receiver.signal(signal.SIGCONT)

    assert receiver.wait_for_line("Received") == " [x] Received 'written meanwhile'"


def stream_is_back(broker, name):
    try:
        broker.channel().queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
        return True
    except pika.exceptions.ChannelClosedByBroker:  # 404 NOT_FOUND: still starting
        return False


# -- what pika offers no public API for: fails if pika changes -----------------------

def test_the_tcp_options_we_accept_are_the_ones_pika_applies():
    for name in options.TCP_OPTIONS:
        with socket.socket() as sock:
            set_sock_opts({name: 7}, sock)
            assert sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == 7, name
    with socket.socket() as sock:  # one pika does not apply: it only logs a warning
        set_sock_opts({"TCP_NODELAY": 1}, sock)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_a_python_without_pika_in_a_checkout_with_a_venv_is_sent_to_it(script, tmp_path):
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    shutil.copytree(PROJECT / "hello", tmp_path / "hello")
    shutil.copy(PROJECT / script, tmp_path)
    # -S: no site-packages, as for a Python where pika was never installed.
    result = subprocess.run([sys.executable, "-S", tmp_path / script], capture_output=True,
                            text=True, timeout=TIMEOUT)

    assert result.returncode == 1
    assert result.stderr == (f"{script}: error: pika is missing; use the project's .venv: "
                             f"source .venv/bin/activate, or .venv/bin/python {script}\n")


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_a_python_without_pika_and_no_venv_is_told_what_works(script, tmp_path):
    shutil.copytree(PROJECT / "hello", tmp_path / "hello")
    shutil.copy(PROJECT / script, tmp_path)
    result = subprocess.run([sys.executable, "-S", tmp_path / script], capture_output=True,
                            text=True, timeout=TIMEOUT)

    managed = (Path(sysconfig.get_path("stdlib")) / "EXTERNALLY-MANAGED").exists()
    assert result.returncode == 1
    assert result.stderr == f"{script}: error: pika is missing; " + (
        "run: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt, then: "
        "source .venv/bin/activate\n" if managed else "run: pip install -r requirements.txt\n")


def test_send_lines_with_stdin_closed_is_a_usage_error(no_broker):
    result = subprocess.run([sys.executable, PROJECT / "send.py", "-"], env=no_broker.env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=TIMEOUT, preexec_fn=lambda: os.close(0))

    assert result.returncode == 2
    assert result.stderr.endswith("send.py: error: - reads stdin, which is closed\n")
    assert no_broker.connections() == 0
