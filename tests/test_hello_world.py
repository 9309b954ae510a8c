"""The blog's Hello World, shown happening against a real broker."""
import argparse
import re
import signal
import subprocess

import pytest

WAITING = " [*] Waiting for messages. To exit press CTRL+C"


def test_send_leaves_one_message_in_hello(broker):
    sent = broker.send()

    assert (sent.returncode, sent.stdout) == (0, " [x] Sent 'Hello World!'\n")
    assert broker.no_errors(sent)
    # The blog's check: `rabbitmqctl list_queues` shows "hello 1".
    assert broker.node.queue_counts()["hello"] == 1


def test_receive_prints_the_blog_lines_and_empties_the_queue(broker):
    broker.send()

    received = broker.receive("--count", "1")

    assert received.returncode == 0
    assert received.stdout == WAITING + "\n [x] Received 'Hello World!'\n"
    assert broker.no_errors(received)
    assert broker.message_count("hello") == 0


def test_receiver_started_first_gets_the_message_at_once(broker):
    receiver = broker.start("receive.py")
    receiver.wait_for_line(WAITING)  # stdout is a pipe here: lines must not wait in a buffer

    broker.send()

    assert receiver.wait_for_line("Received") == " [x] Received 'Hello World!'"
    receiver.signal(signal.SIGINT)
    assert receiver.wait() == 0


def test_custom_message_queue_and_non_ascii_text(broker):
    sent = broker.send("--queue", "任务", "你好", "世界!")
    assert sent.stdout == " [x] Sent '你好 世界!'\n"

    received = broker.receive("--queue", "任务", "--count", "1")

    assert received.stdout.splitlines()[1] == " [x] Received '你好 世界!'"
    assert broker.message_count("任务") == 0


def test_body_that_is_not_utf8_from_the_c_client_is_shown_as_bytes(broker):
    broker.channel().queue_declare("hello", durable=True)
    subprocess.run(["amqp-publish", "--url", broker.url, "-r", "hello", "-b", b"\xff\xfeok"],
                   check=True)

    received = broker.receive("--count", "1")

    assert received.returncode == 0
    assert received.stdout.splitlines()[1] == r" [x] Received b'\xff\xfeok'"


def test_what_send_py_sends_the_c_client_receives(broker):
    broker.send("from", "pika")

    got = subprocess.run(["amqp-get", "--url", broker.url, "-q", "hello"],
                         capture_output=True, check=True)

    assert got.stdout == b"from pika"


def test_amqp_url_from_the_environment_and_url_option_over_it(broker, closed_port):
    wrong = f"amqp://guest:guest@127.0.0.1:{closed_port}/%2F"

    assert broker.send(env=broker.env(AMQP_URL=broker.url)).returncode == 0
    assert broker.send(env=broker.env(AMQP_URL=wrong)).returncode == 1
    assert broker.send("--url", broker.url, env=broker.env(AMQP_URL=wrong)).returncode == 0
    assert broker.message_count("hello") == 2


def test_count_stops_after_n_and_leaves_the_rest(broker):
    for word in ["one", "two", "three"]:
        broker.send(word)

    received = broker.receive("--count", "2")

    assert received.returncode == 0
    assert received.stdout.splitlines()[1:] == [" [x] Received 'one'", " [x] Received 'two'"]
    assert broker.message_count("hello") == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_close_cleanly_with_status_0(broker, signum):
    broker.send("job")
    # --ack --work: a message is being worked on when the signal comes.
    worker = broker.start("receive.py", "--ack", "--work", "60")
    worker.wait_for_line("Received 'job'")

    worker.signal(signum)

    assert worker.wait() == 0
    assert broker.no_errors(worker)
    # Closed cleanly: the broker took the unacknowledged message back at once.
    broker.wait_until(lambda: broker.message_count("hello") == 1, "the message back")


def test_broker_down_gives_one_clear_line_without_the_password(no_broker, closed_port):
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{closed_port}/%2F"

    for script in ["send.py", "receive.py"]:
        result = no_broker.run(script, "--url", url)

        assert result.returncode == 1
        assert result.stdout == ""
        assert len(result.stderr_lines) == 1, result.stderr
        line = result.stderr_lines[0]
        assert f"127.0.0.1:{closed_port}" in line and "connection refused" in line
        assert "Start one with: python3 broker/local.py start (docs/broker.md)" in line
        assert "s3cret" not in line


def help_texts(shown):
    """{option or argument: its help text} from argparse's help: an entry starts two spaces
    in, its text follows after two spaces or more, or on the lines indented further."""
    texts, current = {}, None
    for line in shown.splitlines():
        entry = re.match(r"  (\S.*?)(?:\s{2,}(\S.*))?$", line)
        if entry:
            current = re.findall(r"-{1,2}[\w-]+", entry.group(1)) or [entry.group(1)]
            for name in current:
                texts[name] = entry.group(2) or ""
        elif current and re.match(r"\s{3,}\S", line):
            for name in current:
                texts[name] = (texts[name] + " " + line.strip()).strip()
        else:
            current = None
    return texts


@pytest.mark.parametrize("script", ["send.py", "receive.py"])
def test_help_explains_every_option(no_broker, script):
    shown = no_broker.run(script, "-h")

    assert shown.returncode == 0
    usage = shown.stdout.split("\n\n")[0]
    options = ["--url", "--queue", "--durable", "--quorum", "--stream"] + (
        ["--timeout", "MESSAGE"] if script == "send.py" else
        ["--offset", "--count", "--ack", "--prefetch", "--work", "--raw"])
    texts = help_texts(shown.stdout)
    for option in {*options, *re.findall(r"--[\w-]+", usage)} - {"--help"}:
        assert option in usage, option
        assert len(texts.get(option, "").split()) >= 3, (option, texts.get(option))


def test_the_help_check_sees_an_option_without_help_text():
    """help_texts() above, on argparse's layouts: text on the same line, on the next, none."""
    parser = argparse.ArgumentParser(prog="send.py")
    parser.add_argument("--described", help="says what it does, over several words " * 3)
    parser.add_argument("--a-very-long-option-name", metavar="SECONDS", help="on the next line")
    parser.add_argument("--bare")
    parser.add_argument("--empty", help="")

    texts = help_texts(parser.format_help())

    assert texts["--described"] == ("says what it does, over several words " * 3).strip()
    assert texts["--a-very-long-option-name"] == "on the next line"
    assert texts["--bare"] == texts["--empty"] == ""
