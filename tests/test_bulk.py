"""Many messages in one run: `send.py -` reads stdin, `receive.py --raw` gives them back."""
import re
import subprocess

import pytest

from helpers import WAITING, one_line_error

LINES = [b"plain ascii", "你好，世界".encode(), b"", b"tab\tand  spaces ", b"x" * 1_000_000,
         b"last"]


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
    assert any("stdin was empty: nothing sent" in line for line in sent.stderr_lines)
    assert broker.message_count("hello") == 0


def test_broker_stopped_under_a_bulk_send_reports_where_to_resume(broker):
    lines = b"".join(b"line-%d\n" % number for number in range(1, 20001))
    sender = broker.start("send.py", "-", "--durable", "--queue", "bulk", stdin=lines)
    sender.wait_for_line(" [x] Sent 'line-200'")

    broker.close_connections()
    broker.node.stop()
    try:
        sender.wait()
    finally:
        broker.node.start()

    line = one_line_error(sender)
    confirmed = int(re.search(r"(\d+) lines sent and confirmed", line).group(1))
    assert f"resume from line {confirmed + 1}" in line
    assert len(sender.stdout_lines) == confirmed  # a Sent line for each, no more
    unsure = f"line {confirmed + 1} may or may not be in the queue" in line
    # Durable and confirmed: every one of them survived the stop, and nothing more.
    assert broker.message_count("bulk") in ([confirmed, confirmed + 1] if unsure else [confirmed])
    broker.channel().queue_delete("bulk")
