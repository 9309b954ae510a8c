"""Streams: a queue that keeps its messages, read from any offset, by any number of readers."""
import math
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from helpers import PROJECT, TIMEOUT, WAITING, one_line_error
from node import wait_until


def received(result):
    return [line for line in result.stdout_lines if line.startswith(" [x] Received")]


def fill_stream(broker, *bodies, queue="events"):
    """Each body sent with send.py --stream, each confirmed (so each its own chunk)."""
    for body in bodies:
        assert broker.send("--stream", "--queue", queue, body).returncode == 0


@pytest.fixture
def events(broker):
    """A stream 'events' holding one, two, three; deleted after the test."""
    fill_stream(broker, "one", "two", "three")
    yield broker
    broker.channel().queue_delete("events")


def test_read_from_the_first_message(events):
    result = events.receive("--stream", "--queue", "events", "--count", "3")

    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert received(result) == [" [x] Received 'one'", " [x] Received 'two'",
                                " [x] Received 'three'"]


# A number goes as a plain int (pika encodes it as a 32-bit value below 2**31): every
# lane takes it, 0 included.
@pytest.mark.parametrize("offset,expected", [("0", ["one", "two", "three"]),
                                             ("1", ["two", "three"]), ("2", ["three"]),
                                             ("last", ["three"]), ("10m", ["one", "two"])])
def test_read_from_an_offset(events, offset, expected):
    result = events.receive("--queue", "events", "--offset", offset, "--count",
                            str(len(expected)))

    assert result.returncode == 0, result.stderr
    assert received(result) == [f" [x] Received '{body}'" for body in expected]


def test_read_from_a_time_or_an_age_skips_what_came_before_it(broker):
    """Two messages, then a point in time (a whole second: the unit of a time offset), then
    two more: a time or an age gives the last two only; reading from the start, all four."""
    events = broker  # the stream 'events', deleted after the test (it is named below)
    fill_stream(events, "old-1", "old-2")
    old_sent = time.time()
    point = datetime.fromtimestamp(math.floor(old_sent) + 1, timezone.utc)
    # The clock is the event here: past the point, and the old ones older than AGE s.
    wait_until(lambda: time.time() > max(point.timestamp(), old_sent + AGE + 0.5), TIMEOUT,
               "the clock to pass the point")
    fill_stream(events, "new-1", "new-2")

    by_age = events.receive("--queue", "events", "--offset", f"{AGE}s", "--count", "2")
    by_time = events.receive("--queue", "events", "--offset", point.isoformat(), "--count", "2")
    local = events.receive("--queue", "events", "--offset",
                           point.astimezone().replace(tzinfo=None).isoformat(), "--count", "2")

    for result in (by_age, by_time, local):
        assert result.returncode == 0, result.stderr
        assert received(result) == [" [x] Received 'new-1'", " [x] Received 'new-2'"]
    an_hour_ago = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    everything = events.receive("--queue", "events", "--offset", an_hour_ago, "--count", "4")
    assert [line.split("'")[1] for line in received(everything)] == [
        "old-1", "old-2", "new-1", "new-2"]


AGE = 3  # seconds: the new messages are read well within it, the old ones are older


def test_two_readers_read_the_same_messages_and_the_stream_keeps_them(events):
    readers = [events.start("receive.py", "--stream", "--queue", "events", "--count", "3")
               for _ in range(2)]
    for reader in readers:
        assert reader.wait() == 0, reader.stderr

    assert received(readers[0]) == received(readers[1]) and len(received(readers[0])) == 3
    again = events.receive("--stream", "--queue", "events", "--count", "1")
    assert received(again) == [" [x] Received 'one'"]


def test_next_waits_for_a_new_message_only(events):
    reader = events.start("receive.py", "--queue", "events", "--offset", "next", "--count", "1")
    reader.wait_for_line(WAITING)

    fill_stream(events, "four")

    assert reader.wait() == 0
    assert received(reader) == [" [x] Received 'four'"]


def test_a_stream_met_without_stream_is_read_from_the_start_with_a_note(broker):
    side = broker.channel()
    side.queue_declare("events", durable=True, arguments={"x-queue-type": "stream"})
    for body in [b"from C", b"and again"]:  # the C client writes, our script reads
        subprocess.run(["amqp-publish", "--url", broker.url, "-r", "events", "-b", body],
                       check=True)
    try:
        result = broker.receive("--queue", "events", "--count", "2")
        sent = broker.send("--queue", "events", "from send.py")
    finally:
        broker.channel().queue_delete("events")

    assert result.returncode == 0, result.stderr
    assert received(result) == [" [x] Received 'from C'", " [x] Received 'and again'"]
    assert result.stderr_lines == ["receive.py: note: queue 'events' is a stream; using it as "
                                   "one, as --stream does"]
    assert sent.returncode == 0 and "is a stream" in sent.stderr


def test_stream_asked_of_a_classic_queue_fails_with_the_fix(broker):
    broker.channel().queue_declare("hello", durable=True)

    for script in ["send.py", "receive.py"]:
        line = one_line_error(broker.run(script, "--stream"))

        assert "'hello' exists and is not a stream, which --stream needs" in line


@pytest.mark.parametrize("args", [["--offset", "soon"], ["--offset", "1", "--quorum"],
                                  ["--stream", "--quorum"]])
def test_bad_stream_options_are_usage_errors(no_broker, args):
    line = one_line_error(no_broker.receive(*args), status=2)

    assert "--offset" in line or "not allowed with" in line
    assert no_broker.connections() == 0  # refused before connecting


def test_a_reader_goes_on_after_a_broker_restart_without_reading_twice(events):
    reader = events.start("receive.py", "--stream", "--queue", "events")
    reader.wait_for_line("Received 'three'")

    events.close_connections()
    events.node.restart()  # a clean one: after kill -9, 4.3.6 kept the stream down for minutes
    reader.wait_for_line("reconnected", stderr=True)
    fill_stream(events, "four")

    reader.wait_for_line("Received 'four'")
    reader.signal(signal.SIGINT)
    assert reader.wait() == 0
    assert [line.split("'")[1] for line in received(reader)] == ["one", "two", "three", "four"]


def readme_stream_demo():
    """The commands and the output of the demo that opens docs/streams.md."""
    section = (PROJECT / "docs" / "streams.md").read_text()
    commands, output = re.findall(r"```(?:sh)?\n(.*?)```", section, re.DOTALL)[:2]
    return [re.split(r"\s+# ", line)[0] for line in commands.splitlines()], output


def test_the_readme_stream_demo_works_as_printed(broker):
    commands, output = readme_stream_demo()
    shell = "\n".join(command.replace("python ", f"{sys.executable} ", 1)
                      for command in commands)
    try:
        result = subprocess.run(["bash", "-ec", shell], cwd=PROJECT, env=broker.env(),
                                capture_output=True, text=True, timeout=60)
    finally:
        broker.channel().queue_delete("events")

    assert result.returncode == 0, result.stderr
    assert result.stdout == output
