"""The blog's two promises, acknowledgement and persistence, under real crashes."""
import signal

import pytest


def received_bodies(result):
    return [line for line in result.stdout_lines if line.startswith(" [x] Received")]


# -- 消息确认机制: acknowledgements ---------------------------------------------

def test_worker_killed_mid_task_with_ack_its_message_comes_back_redelivered(broker):
    broker.send("job-1")
    worker = broker.start("receive.py", "--ack", "--work", "30")
    worker.wait_for_line("Received 'job-1'")

    worker.signal(signal.SIGKILL)

    second = broker.receive("--ack", "--count", "1")
    assert second.returncode == 0
    assert received_bodies(second) == [" [x] Received 'job-1' (redelivered)"]


def test_worker_killed_mid_task_with_auto_ack_its_message_is_gone(broker):
    broker.send("job-1")
    worker = broker.start("receive.py", "--work", "30")
    worker.wait_for_line("Received 'job-1'")

    worker.signal(signal.SIGKILL)
    worker.wait()
    broker.send("job-2")

    second = broker.receive("--count", "1")
    assert received_bodies(second) == [" [x] Received 'job-2'"]
    assert broker.message_count("hello") == 0


def test_two_ack_workers_share_ten_messages_fairly(broker):
    """--prefetch 1 (fair dispatch): a busy worker gets no new message until it has acked
    the last; round-robin (any larger prefetch) would give the slow one 5 of the 10."""
    slow = broker.start("receive.py", "--ack", "--prefetch", "1", "--work", "6")
    fast = broker.start("receive.py", "--ack", "--prefetch", "1", "--work", "0.05")
    for worker in (slow, fast):
        worker.wait_for_line("Waiting for messages")

    sent = broker.send("-", stdin=b"".join(b"task-%d\n" % number for number in range(1, 11)))
    assert sent.returncode == 0, sent.stderr
    broker.wait_until(lambda: len(received_bodies(fast)) == 9 or len(received_bodies(slow)) > 1,
                      "the fast worker to do 9, or the slow one to start a second")

    # The slow worker is still on its first task: it got that one and no other.
    assert len(received_bodies(slow)) == 1, (slow.stdout_lines, fast.stdout_lines)
    taken = {line.split("'")[1] for line in received_bodies(slow) + received_bodies(fast)}
    assert taken == {f"task-{number}" for number in range(1, 11)}
    broker.wait_until(lambda: broker.message_count("hello") == 0, "all acked")


def test_work_longer_than_the_heartbeat_keeps_the_connection(broker):
    broker.send("slow job")
    url = broker.node.url(query="heartbeat=2")

    worker = broker.receive("--url", url, "--ack", "--work", "8", "--count", "1", timeout=60)

    assert worker.returncode == 0, worker.stderr
    assert received_bodies(worker) == [" [x] Received 'slow job'"]
    assert broker.no_errors(worker)
    assert broker.message_count("hello") == 0  # acked, not requeued


# -- 消息持久化: persistence ----------------------------------------------------

def test_durable_messages_survive_a_broker_crash_in_order(broker):
    jobs = [f"job-{number}" for number in range(1, 21)]
    for job in jobs:
        sent = broker.send("--durable", job)
        assert sent.returncode == 0, sent.stderr

    broker.crash_and_restart()

    # The blog's check after the restart: list_queues still shows them all.
    assert broker.node.queue_counts()["hello"] == 20
    received = broker.receive("--durable", "--ack", "--count", "20")
    assert received.returncode == 0
    # After a crash the broker cannot know what was delivered: it may mark them redelivered.
    bodies = [line.replace(" (redelivered)", "") for line in received_bodies(received)]
    assert bodies == [f" [x] Received '{job}'" for job in jobs]


def test_messages_without_durable_are_gone_after_a_broker_crash(broker):
    # A queue name of its own: 3.10 may bring back a durable 'hello' whose deletion by the
    # test before was not yet on disk when the broker was killed.
    for number in range(1, 4):
        assert broker.send("--queue", "scratch", f"job-{number}").returncode == 0
    assert broker.message_count("scratch") == 3

    broker.crash_and_restart()

    if broker.lane.refuses_transient_queues:
        assert broker.message_count("scratch") == 0  # queue made durable, messages were not
        broker.channel().queue_delete("scratch")
    else:
        assert broker.message_count("scratch") is None  # gone with their queue


# -- declaring the queue on today's brokers -------------------------------------

def test_default_run_on_a_broker_that_refuses_non_durable_queues(broker):
    sent = broker.send()

    assert sent.returncode == 0
    assert sent.stdout == " [x] Sent 'Hello World!'\n"
    if broker.lane.refuses_transient_queues:
        assert len(sent.stderr_lines) == 1
        assert "refuses non-durable queues; declaring 'hello' durable" in sent.stderr
    else:
        assert sent.stderr == ""
    received = broker.receive("--count", "1")
    assert received_bodies(received) == [" [x] Received 'Hello World!'"]


@pytest.mark.parametrize("arguments", [None, {"x-queue-type": "quorum"}],
                         ids=["durable-classic", "quorum"])
def test_existing_durable_or_quorum_queue_is_used_as_it_is(broker, arguments):
    broker.channel().queue_declare("hello", durable=True, arguments=arguments)

    for script_args in [("send.py",), ("send.py", "--durable"), ("receive.py", "--count", "2")]:
        result = broker.run(*script_args)
        assert result.returncode == 0, result.stderr
        # A note wherever the declaration differs (not durable, or not quorum); only a note.
        differs = arguments is not None or "--durable" not in script_args
        assert len(result.stderr_lines) == differs, result.stderr
        assert all("already exists with other settings" in line for line in result.stderr_lines)
    assert broker.message_count("hello") == 0


# Not on 4.0 here: it allows no non-durable queue that --durable could meet.
@pytest.mark.lanes("rabbitmq3.10", "rabbitmq4.3")
def test_durable_asked_of_an_existing_non_durable_queue_fails_with_the_fix(broker):
    assert not broker.lane.refuses_transient_queues
    broker.send()  # the blog's non-durable 'hello'

    for script in ["send.py", "receive.py"]:
        result = broker.run(script, "--durable")

        assert result.returncode == 1
        assert len(result.stderr_lines) == 1
        line = result.stderr_lines[0]
        assert "'hello' exists and is not durable, which --durable needs" in line
        assert "--queue" in line and "delete_queue hello" in line
    assert broker.message_count("hello") == 1


def test_quorum_asked_of_an_existing_classic_queue_fails_with_the_fix(broker):
    broker.channel().queue_declare("hello", durable=True)  # a durable classic queue

    for script in ["send.py", "receive.py"]:
        result = broker.run(script, "--quorum")

        assert result.returncode == 1
        assert len(result.stderr_lines) == 1, result.stderr
        line = result.stderr_lines[0]
        assert "'hello' exists and is not a quorum queue, which --quorum needs" in line
        assert "delete_queue hello" in line
    assert broker.message_count("hello") == 0
