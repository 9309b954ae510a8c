"""Bad input and broker trouble, made for real: every case ends in one honest line.

Each case asserts what a user sees and can check: the exit status, at most three
lines on stderr, no traceback, no part of the password (a distinctive one), no
' [x] Sent' for a message the broker did not confirm, and what is in the queue
afterwards. Broker states are real: resource alarms, a frozen node (SIGSTOP,
resumed after), a full queue, servers that are not AMQP, closed pipes, /dev/full.
"""
import os
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import quote, urlencode

import pika
import pytest

from helpers import PROJECT, TIMEOUT, cannot_run, failed, one_line_error, stray_lines
from node import wait_until

PASSWORD = "Zq9-s3cret-PW"
SECRETS = ("Zq9", "s3cret", "cret-PW")


@pytest.fixture(scope="module")
def matrix(session_broker):
    """The session broker with user 'matrix' (a distinctive password) and its URL."""
    ctl = session_broker.node.ctl
    ctl("add_user", "matrix", PASSWORD)
    ctl("set_permissions", "matrix", ".*", ".*", ".*")
    ctl("add_user", "reader", PASSWORD)
    ctl("set_permissions", "reader", ".*", "^$", "^$")  # may declare, may not write or read
    session_broker.matrix_url = session_broker.node.url("matrix", PASSWORD)
    yield session_broker
    ctl("delete_user", "matrix")
    ctl("delete_user", "reader")


@pytest.fixture
def broker(matrix, request):
    matrix.begin_test()
    matrix.url = matrix.matrix_url  # the scripts log in as 'matrix'
    yield matrix
    matrix.end_test(failed(request))
    matrix.url = matrix.node.url()


@pytest.fixture
def no_broker(no_broker):
    """No broker (checks made before connecting run once, not per lane); AMQP_URL as
    'matrix', so that its password must not show either."""
    no_broker.url = url(no_broker)
    return no_broker


def check(result, status, *words, sent=0):
    """The promises of every case; returns the error line (or '' when it exits 0)."""
    if status == 0:  # notes only: those naming the words, and the lane's own
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        assert stray_lines(result, *words) == [], result.stderr
        line = ""
    else:
        line = one_line_error(result, status)
    if status not in (0, 2):  # argparse prints its usage first
        assert len(result.stderr_lines) <= 3, result.stderr
    output = result.stdout + result.stderr
    assert not any(secret in output for secret in SECRETS), output
    assert sum(out.startswith(" [x] Sent") for out in result.stdout_lines) == sent
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return line


def url(broker, user="matrix", password=PASSWORD, port=None, host="127.0.0.1", query=""):
    port = port or broker.port
    return f"amqp://{user}:{quote(password, safe='')}@{host}:{port}/%2F" + (
        f"?{query}" if query else "")


# -- a wrong command line: exit 2, nothing sent ------------------------------------

BAD_COMMAND_LINES = {
    "unencoded / in password": (["send.py", "--url", f"amqp://matrix:Zq9/{PASSWORD}@h/"],
                                "percent-encode"),
    "scheme": (["send.py", "--url", f"http://matrix:{PASSWORD}@localhost/"], "amqp://"),
    "empty --url": (["send.py", "--url", ""], "amqp://"),
    "unclosed [": (["send.py", "--url", f"amqp://matrix:{PASSWORD}@[::1/"], "Invalid IPv6 URL"),
    "option twice": (["receive.py", "--url", "amqp://h/?heartbeat=5&heartbeat=9"],
                     "option heartbeat given more than once"),
    "port": (["send.py", "--url", f"amqp://matrix:{PASSWORD}@h:port/"], "no port number"),
    "port range": (["receive.py", "--url", f"amqp://m:{PASSWORD}@h:99999/"], "out of range"),
    "ssl_options syntax": (["send.py", "--url", f"amqps://m:{PASSWORD}@h/?ssl_options={{"],
                           "never closed"),
    "ssl_options empty": (["send.py", "--url", f"amqps://m:{PASSWORD}@h/?ssl_options={{}}"],
                          "cafile"),
    "tcp_options": (["receive.py", "--url", f"amqp://m:{PASSWORD}@h/?tcp_options=1"],
                    "tcp_options must be a dict"),
    "unknown option": (["send.py", "--url", f"amqp://m:{PASSWORD}@h/?bogus=1"], "bogus"),
    "heartbeat": (["receive.py", "--url", f"amqp://m:{PASSWORD}@h/?heartbeat=x"], "heartbeat"),
    "empty queue": (["send.py", "--queue", ""], "1 to 255 bytes"),
    "empty queue receive": (["receive.py", "--queue", ""], "1 to 255 bytes"),
    "long queue": (["send.py", "--queue", "q" * 256], "1 to 255 bytes"),
    "timeout zero": (["send.py", "--timeout", "0"], "--timeout: must be between"),
    "timeout text": (["send.py", "--timeout", "soon"], "--timeout: not a number"),
    "count": (["receive.py", "--count", "-1"], "--count: must be between"),
    "count absurd": (["receive.py", "--count", "1e99"], "--count: not a number"),
    "prefetch": (["receive.py", "--prefetch", "0"], "--prefetch: must be between"),
    "prefetch absurd": (["receive.py", "--prefetch", "100000"], "--prefetch: must be between"),
    "work": (["receive.py", "--work", "-5"], "--work: must be between"),
    "work nan": (["receive.py", "--work", "nan"], "--work: must be between"),
    "unknown flag": (["receive.py", "--fast"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", BAD_COMMAND_LINES)
def test_bad_command_line_is_a_usage_error(no_broker, case):
    args, expected = BAD_COMMAND_LINES[case]

    line = check(no_broker.run(*args), 2, expected)

    assert expected in line
    assert no_broker.connections() == 0  # refused before connecting


# -- every URL option pika documents: a good value works, a bad one is a usage error ----
# Bad values include those pika takes while parsing and fails with only while
# connecting (marked "late"): they must not be blamed on the broker.

URL_OPTIONS = {  # option: (a good value, bad values)
    "blocked_connection_timeout": ("30", ["-1", "nan"]),           # nan: late
    "channel_max": ("100", ["70000", "many"]),
    "client_properties": ("{'connection_name': 'walk'}", ["[1]", "{'x': {1, 2}}"]),  # late
    "connection_attempts": ("2", ["0"]),
    "frame_max": ("8192", ["100"]),
    "heartbeat": ("10", ["-1", "70000", ""]),                       # 70000: late
    "locale": ("en_US", ["x" * 300]),                               # late
    "retry_delay": ("0.5", ["-1"]),                                 # late
    "socket_timeout": ("5", ["0", "nan"]),                          # nan: late
    "ssl_options": ("{'ca_certs': CA, 'server_hostname': 'localhost'}",
                    ["{'ca_certs': CA, 'server_hostname': 5}",     # late
                     f"{{'ca_certs': CA, 'certfile': CA, 'password': '{PASSWORD}'}}"]),
    "stack_timeout": ("5", ["-3", "inf"]),                          # inf: late
    "tcp_options": ("{'TCP_KEEPIDLE': 60}", ["{'TCP_KEEPIDLE': 'x'}", "{'TCP_NODELAY': 1}"]),
}


def test_the_walk_covers_every_option_pika_takes_in_a_url():
    taken = {name.removeprefix("_set_url_") for name in dir(pika.URLParameters)
             if name.startswith("_set_url_")}

    assert taken == set(URL_OPTIONS)


def option_url(broker, name, value):
    value = value.replace("CA", repr(broker.ca_file))
    if name != "ssl_options":
        return url(broker, query=urlencode({name: value}))
    return url(broker, port=broker.tls_port, host="localhost").replace("amqp:", "amqps:") + \
        "?" + urlencode({name: value})


@pytest.mark.parametrize("name", URL_OPTIONS)
def test_a_good_url_option_value_works(broker, name):
    option = option_url(broker, name, URL_OPTIONS[name][0])

    check(broker.send("--url", option, "walk"), 0, sent=1)
    check(broker.receive("--url", option, "--count", "1"), 0)
    assert broker.message_count("hello") == 0


@pytest.mark.parametrize("name,bad", [(name, bad) for name, (_, bads) in URL_OPTIONS.items()
                                      for bad in bads])
def test_a_bad_url_option_value_is_a_usage_error_naming_it(no_broker, name, bad):
    option = option_url(no_broker, name, bad)

    for script in ["send.py", "receive.py"]:
        line = check(no_broker.run(script, "--url", option), 2)

        assert f"option {name}=" in line
        assert "password" in bad or repr(bad.replace("CA", repr(no_broker.ca_file))) in line
    assert no_broker.connections() == 0  # refused before connecting


# -- cannot connect: exit 1, saying what happened ----------------------------------
# (nothing listening, a wrong host, password or vhost: test_hello_world.py and
# test_connections.py)

def test_empty_amqp_url_is_unset(no_broker):
    """An empty AMQP_URL means the default, localhost:5672: tried in a network namespace of
    its own (its loopback up, nothing listening), never the user's broker on 5672."""
    if not shutil.which("unshare"):
        cannot_run("needs unshare (util-linux)")
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    own_network = ["unshare", *user, "--net", "sh", "-ec", 'ip link set lo up && exec "$@"',
                   "sh"]

    for value in ["", None]:  # empty, and unset: the same
        result = subprocess.run([*own_network, sys.executable, PROJECT / "send.py"],
                                env=no_broker.env(AMQP_URL=value), capture_output=True,
                                text=True, timeout=TIMEOUT)
        assert result.returncode == 1, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith("send.py: error: ") and result.stderr.count("\n") == 1
        assert "localhost:5672 (connection refused)" in result.stderr, result.stderr
    assert no_broker.connections() == 0


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_a_server_that_never_answers(no_broker, silent_server, script):
    args = ["--timeout", "1"] if script == "send.py" else []
    target = url(no_broker, port=silent_server, query="stack_timeout=1")

    line = check(no_broker.run(script, "--url", target, *args), 1)

    assert "no AMQP handshake in time" in line


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_a_server_that_is_not_amqp(no_broker, http_server, script):
    line = check(no_broker.run(script, "--url", url(no_broker, port=http_server)), 1)

    assert "closed during the AMQP handshake" in line


def test_tls_asked_of_a_plain_port(broker):
    plain = url(broker).replace("amqp://", "amqps://")

    line = check(broker.send("--url", plain, "--timeout", "3"), 1)

    assert "TLS handshake failed" in line


# -- refused by the broker: exit 1, the broker's reason ---------------------------

def test_full_queue_rejects_the_message(broker):
    broker.channel().queue_declare("hello", durable=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"})
    check(broker.send("first"), 0, "already exists with other settings", sent=1)

    line = check(broker.send("second"), 1)

    assert "the queue is full" in line
    assert broker.bodies() == [b"first"]


def test_queue_exclusive_to_another_connection(broker):
    broker.channel().queue_declare("mine", exclusive=True)

    for script in ["send.py", "receive.py"]:
        line = check(broker.run(script, "--queue", "mine"), 1)
        assert "RESOURCE_LOCKED" in line and "'mine'" in line


def test_a_stream_met_without_stream_is_read_not_refused(broker):
    """Before issue 17 this was a PRECONDITION_FAILED error; now the stream is read."""
    broker.channel().queue_delete("events")
    broker.channel().queue_declare("events", durable=True,
                                   arguments={"x-queue-type": "stream"})
    try:
        sent = broker.send("--queue", "events", "e1")
        check(sent, 0, "is a stream; using it as one", sent=1)  # taken like any queue

        received = broker.receive("--queue", "events", "--count", "1")
        check(received, 0, "is a stream; using it as one")
    finally:
        broker.channel().queue_delete("events")

    assert received.stdout_lines[1] == " [x] Received 'e1'"
    assert "is a stream; using it as one" in received.stderr


def test_user_without_write_permission(broker):
    reader = url(broker, user="reader")

    line = check(broker.send("--url", reader), 1)

    assert "ACCESS_REFUSED" in line and "the message is not in the queue" in line
    assert broker.message_count("hello") == 0


def test_user_without_read_permission(broker):
    broker.send()

    line = check(broker.receive("--url", url(broker, user="reader")), 1)

    assert "ACCESS_REFUSED" in line
    assert broker.message_count("hello") == 1


# -- resource alarms: the broker blocks publishers --------------------------------

@pytest.fixture
def alarm(broker):
    """Raise a memory or disk alarm on the broker for the test; clear it after."""
    ctl = broker.node.ctl
    raised = []

    def alarms():
        return ctl("eval", "rabbit_alarm:get_alarms().").stdout

    def raise_alarm(kind):
        raised.append(kind)
        if kind == "memory":
            ctl("set_vm_memory_high_watermark", "0.0000001")
        else:
            ctl("set_disk_free_limit", "1000GB")
        wait_until(lambda: kind in alarms(), TIMEOUT, f"the {kind} alarm")

    yield raise_alarm
    if "memory" in raised:
        ctl("set_vm_memory_high_watermark", "0.4")
    if "disk" in raised:
        ctl("set_disk_free_limit", "50MB")
    wait_until(lambda: alarms().strip() == "[]", TIMEOUT, "the alarms to clear")


@pytest.mark.parametrize("kind", ["memory", "disk"])
def test_send_blocked_by_a_resource_alarm(broker, alarm, kind):
    broker.channel().queue_declare("hello", durable=True)
    alarm(kind)

    one = check(broker.send("--timeout", "2"), 1)
    lines = check(broker.send("-", "--timeout", "2", stdin=b"a\nb\n"), 1)

    # BlockingConnection gives the broker's reason for blocking to no public API.
    assert "blocked publishers (a resource alarm: low on memory or disk)" in one
    assert "the message may or may not be in the queue" in one
    assert f"blocked publishers (low on {kind})" in lines
    assert "lines 1-2 may or may not be in the queue; resume from line 1" in lines


def test_receive_is_not_blocked_by_an_alarm(broker, alarm):
    broker.send("before the alarm")
    alarm("memory")

    received = broker.receive("--count", "1")

    check(received, 0)
    assert received.stdout_lines[1] == " [x] Received 'before the alarm'"


# -- a frozen broker (SIGSTOP), resumed after --------------------------------------

@pytest.fixture
def freeze(broker):
    frozen = []

    def now():
        os.kill(broker.node.beam_pid(), signal.SIGSTOP)
        frozen.append(True)

    yield now
    if frozen:
        os.kill(broker.node.beam_pid(), signal.SIGCONT)
        broker.close_connections()  # its heartbeats were missed meanwhile


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_frozen_broker_before_connecting(broker, freeze, script):
    freeze()

    line = check(broker.run(script, "--url", url(broker, query="stack_timeout=2")), 1)

    assert "no AMQP handshake in time" in line


def test_frozen_broker_while_waiting_for_a_confirm(broker, freeze):
    sender = broker.start("send.py", "-", "--timeout", "1", stdin="open")
    sender.feed(b"line one\n")
    sender.wait_for_line(" [x] Sent 'line one'")
    freeze()
    sender.feed(b"line two\n")

    sender.wait(timeout=20)  # heartbeat 1 s: pika notices within 2 x (1 + 5) s

    line = check(sender, 1, sent=1)
    assert "stopped answering" in line
    assert "line 1 sent and confirmed, line 2 may or may not be in the queue" in line
    assert "resume from line 2" in line


def test_receive_rides_out_a_frozen_broker(broker):
    receiver = broker.start("receive.py", "--url", url(broker, query="heartbeat=1"))
    receiver.wait_for_line("Waiting for messages")
    beam = broker.node.beam_pid()
    os.kill(beam, signal.SIGSTOP)
    try:
        receiver.wait_for_line("stopped answering", stderr=True)
    finally:
        os.kill(beam, signal.SIGCONT)
    broker.close_connections()
    receiver.wait_for_line("reconnected", stderr=True)

    check(broker.send("after the freeze", env=broker.env()), 0, sent=1)

    assert receiver.wait_for_line("Received") == " [x] Received 'after the freeze'"
    receiver.signal(signal.SIGINT)
    receiver.wait()
    check(receiver, 0, "stopped answering", ": note: reconnected")


# -- our own output failing ---------------------------------------------------------

def test_send_into_a_closed_pipe_still_exits_0_and_says_it_was_sent(broker):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `send.py | true`: nobody reads
    try:
        result = broker.send("piped", stdout=write_end)
    finally:
        os.close(write_end)

    check(result, 0, "was sent and confirmed", "Broken pipe")
    assert broker.bodies() == [b"piped"]


def test_send_with_stdout_on_a_full_disk(broker):
    with open("/dev/full", "w") as full:
        result = broker.send("full disk", stdout=full)

    check(result, 0, "was sent and confirmed", "No space left on device")
    assert broker.bodies() == [b"full disk"]


def test_receive_into_a_pipe_closed_by_head_ends_quietly_and_keeps_the_rest(broker):
    # `receive.py --ack | head -1`: head reads the Waiting line and goes away.
    receiver = subprocess.Popen([sys.executable, str(PROJECT / "receive.py"), "--ack"],
                                env=broker.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert receiver.stdout.readline().startswith(b" [*] Waiting")
    receiver.stdout.close()

    for number in range(3):
        broker.send(f"m{number}")

    assert receiver.wait(TIMEOUT) == 0
    quiet = SimpleNamespace(stderr_lines=receiver.stderr.read().decode().splitlines(),
                            lane=broker.lane)
    assert stray_lines(quiet) == [], quiet.stderr_lines  # the broker is not to blame
    broker.wait_until(lambda: broker.message_count("hello") == 3, "all 3 back in the queue")


def test_receive_with_stdout_on_a_full_disk(broker):
    broker.send("kept")

    with open("/dev/full", "w") as full:
        result = broker.receive("--ack", stdout=full)

    assert "cannot write the output: No space left on device" in check(result, 1)
    broker.wait_until(lambda: broker.message_count("hello") == 1, "the message back")


def test_text_the_terminal_cannot_show_is_escaped(broker):
    env = broker.env(PYTHONIOENCODING="ascii")

    sent = broker.send("你好", env=env)
    received = broker.receive("--count", "1", env=env)

    check(sent, 0, sent=1)
    assert sent.stdout_lines == [r" [x] Sent '\u4f60\u597d'"]
    assert received.stdout_lines[1] == r" [x] Received '\u4f60\u597d'"


# -- input taken as given -----------------------------------------------------------

def test_argument_that_is_not_utf8_is_sent_as_its_bytes(broker):
    result = broker.run("send.py", os.fsdecode(b"\xff\xfeok"))

    check(result, 0, sent=1)
    assert broker.bodies() == [b"\xff\xfeok"]


def test_empty_message_is_sent_empty(broker):
    check(broker.send(""), 0, sent=1)

    assert broker.bodies() == [b""]


def test_traceback_switch_shows_where_an_error_comes_from(no_broker, closed_port):
    env = no_broker.env(HELLO_TRACEBACK="1")

    result = no_broker.send("--url", url(no_broker, port=closed_port), env=env)

    assert result.returncode == 1
    assert "Traceback" in result.stderr and "connection refused" in result.stderr_lines[-1]
