"""Many messages in one run: `send.py -` reads stdin, `receive.py --raw` gives them back."""
import re
import signal
import subprocess
import sys
import time

import pytest

from helpers import PROJECT, TIMEOUT, WAITING, one_line_error, stray_lines, told

LINES = [b"plain ascii", "你好，世界".encode(), b"", b"tab\tand  spaces ", b"x" * 1_000_000,
         b"caf\xe9 \xff\xfe not UTF-8", b"last"]


@pytest.mark.parametrize("durable", [[], ["--durable"]], ids=["transient", "durable"])
def test_round_trip_gives_back_the_very_bytes(broker, tmp_path, durable):
    original = tmp_path / "file"
    original.write_bytes(b"\n".join(LINES) + b"\n")

    sent = broker.send("-", *durable, stdin=original.read_bytes())
    with open(tmp_path / "copy", "wb") as copy:
        received = broker.receive("--raw", *durable, "--count", str(len(LINES)), stdout=copy)

    assert sent.returncode == 0, sent.stderr
    assert len(sent.stdout_lines) == len(LINES)
    assert sent.stdout_lines[:3] == [" [x] Sent 'plain ascii'", " [x] Sent '你好，世界'",
                                     " [x] Sent ''"]
    assert received.returncode == 0, received.stderr
    assert (tmp_path / "copy").read_bytes() == original.read_bytes()
    assert WAITING in received.stderr  # the Waiting line is not in the copy
    assert broker.message_count("hello") == 0


def test_raw_body_that_is_not_utf8_comes_out_as_it_is(broker):
    channel = broker.channel()
    channel.queue_declare("hello", durable=True)
    for body in [b"\xff\xfeok", b"caf\xe9"]:  # Latin-1, from the C client
        subprocess.run(["amqp-publish", "--url", broker.url, "-r", "hello", "-b", body],
                       check=True)
    channel.basic_publish("", "hello", b"nul\x00byte")

    received = broker.receive("--raw", "--count", "3")

    assert received.returncode == 0, received.stderr
    assert bytes(received.stdout_bytes) == b"\xff\xfeok\ncaf\xe9\nnul\x00byte\n"


def test_lines_without_a_final_newline_and_the_c_client_reads_them(broker):
    sent = broker.send("-", stdin=b"first\nsecond")

    assert sent.returncode == 0
    got = subprocess.run(["amqp-get", "--url", broker.url, "-q", "hello"],
                         capture_output=True, check=True)
    assert got.stdout == b"first"
    assert broker.bodies() == [b"second"]


def test_empty_input_sends_nothing_and_says_so(broker):
    sent = broker.send("-", stdin=b"")

    assert (sent.returncode, sent.stdout) == (0, "")
    assert "stdin was empty: nothing sent" in sent.stderr
    assert stray_lines(sent, "stdin was empty: nothing sent") == []
    assert broker.message_count("hello") == 0


def body_numbers(bodies):
    return [int(body.split(b"-")[1]) for body in bodies]


def test_broker_killed_under_a_bulk_send_reports_exactly_what_it_has(broker):
    lines = b"".join(b"line-%d\n" % number for number in range(1, 20001))
    sender = broker.start("send.py", "-", "--durable", "--queue", "bulk", stdin=lines)
    sender.wait_for_line(" [x] Sent 'line-200'")

    broker.close_connections()
    broker.node.kill()  # kill -9: no clean shutdown
    try:
        sender.wait()
    finally:
        broker.node.start()

    line = one_line_error(sender)
    confirmed = told(line, "sent and confirmed")
    unsure = told(line, "may or may not be in the queue")
    assert confirmed == list(range(1, len(confirmed) + 1)) and len(confirmed) >= 200, line
    assert unsure == list(range(len(confirmed) + 1, len(confirmed) + len(unsure) + 1)), line
    assert len(unsure) <= 1000  # never more than the window
    assert f"resume from line {len(confirmed) + 1:,}" in line
    assert len(sender.stdout_lines) == len(confirmed)  # a Sent line for each, no more
    # Durable and confirmed: every one of them survived, and nothing it did not send.
    in_queue = body_numbers(broker.bodies("bulk"))
    assert in_queue[:len(confirmed)] == confirmed
    assert set(in_queue[len(confirmed):]) <= set(unsure)


def test_a_nack_in_the_middle_names_the_first_refused_line(broker):
    broker.channel().queue_declare("bounded", durable=True, arguments={
        "x-max-length": 100, "x-overflow": "reject-publish"})
    lines = b"".join(b"line-%d\n" % number for number in range(1, 301))

    sent = broker.send("-", "--queue", "bounded", stdin=lines)

    line = one_line_error(sent)
    assert "the broker refused line 101 (nack)" in line
    assert told(line, "sent and confirmed") == list(range(1, 101))
    assert "resume from line 101" in line
    assert len(sent.stdout_lines) == 100
    refused = told(line, "not in the queue (refused)")
    assert refused[0] == 101 and set(refused) <= set(range(101, 301))
    assert body_numbers(broker.bodies("bounded")) == list(range(1, 101))
    broker.channel().queue_delete("bounded")


def test_a_pipe_that_pauses_longer_than_three_heartbeats(broker):
    # --timeout 2: heartbeats every second; the broker drops a connection that misses two.
    sender = broker.start("send.py", "-", "--timeout", "2", stdin="open")
    sender.feed(b"before the pause\n")
    sender.wait_for_line(" [x] Sent 'before the pause'")
    time.sleep(5)  # the pause is the input itself, as `tail -f` gives it
    sender.feed(b"after the pause\n")
    sender.wait_for_line(" [x] Sent 'after the pause'")
    sender.process.stdin.close()

    assert sender.wait() == 0, sender.stderr
    assert broker.bodies() == [b"before the pause", b"after the pause"]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_while_stdin_is_quiet_says_where_to_resume(broker, signum, status):
    sender = broker.start("send.py", "-", stdin="open")
    sender.feed(b"one\ntwo\n")
    sender.wait_for_line(" [x] Sent 'two'")

    sender.signal(signum)
    sender.wait()

    assert one_line_error(sender, status) == (
        "send.py: interrupted; lines 1-2 sent and confirmed; resume from line 3")
    assert broker.bodies() == [b"one", b"two"]


def test_stdout_closed_midway_says_truly_where_to_resume(broker, tmp_path):
    (tmp_path / "lines").write_bytes(b"".join(b"line-%d\n" % n for n in range(1, 50001)))
    with open(tmp_path / "lines", "rb") as lines:
        sender = subprocess.Popen([sys.executable, PROJECT / "send.py", "-", "--queue", "head"],
                                  env=broker.env(), stdin=lines, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    broker.queues.add("head")
    sender.stdout.readline(), sender.stdout.readline()
    sender.stdout.close()  # as `| head -2` does
    _, stderr = sender.communicate(timeout=TIMEOUT)

    line = stderr.decode().strip()
    assert sender.returncode == 1 and "stdout failed (Broken pipe)" in line, line
    confirmed = told(line, "sent and confirmed") + told(line, "sent and confirmed too")
    unsure = told(line, "may or may not be in the queue")
    resume = int(re.search(r"resume from line ([0-9,]+)", line).group(1).replace(",", ""))
    assert resume >= 3, line  # lines 1 and 2 were confirmed: their Sent lines were read
    assert confirmed[:resume - 1] == list(range(1, resume)), line
    in_queue = set(body_numbers(broker.bodies("head")))
    assert set(range(1, resume)) <= in_queue  # the queue has every line before it
    assert set(confirmed) <= in_queue <= set(confirmed) | set(unsure)
