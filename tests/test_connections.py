"""Credentials, TLS, a broker that goes away, a consumer timeout: one clear line each."""
import signal
from urllib.parse import quote

import pytest

from helpers import one_line_error
from node import free_port

# -- 如果MQ有用户名密码，在哪里输入？ The blog's open question ------------------------

@pytest.fixture(scope="module")
def alice(session_broker):
    """A user with a password that needs percent-encoding, and her own vhost."""
    password = "p@ss w/rd:1"
    ctl = session_broker.node.ctl
    ctl("add_user", "alice", password)
    ctl("add_vhost", "team a")
    ctl("set_permissions", "-p", "team a", "alice", ".*", ".*", ".*")
    yield f"amqp://alice:{quote(password, safe='')}@127.0.0.1:{session_broker.node.port}"
    ctl("delete_vhost", "team a")
    ctl("delete_user", "alice")


def test_user_password_and_vhost_in_the_url(broker, alice):
    url = f"{alice}/{quote('team a', safe='')}"

    sent = broker.send("--url", url, "--queue", "private", "for alice")
    received = broker.receive("--count", "1", "--queue", "private", env=broker.env(AMQP_URL=url))

    assert sent.returncode == 0 and received.returncode == 0
    assert received.stdout_lines[1] == " [x] Received 'for alice'"
    assert broker.message_count("private") is None  # not in the default vhost


def test_wrong_password_is_not_retried_and_not_shown(broker, alice):
    url = f"amqp://alice:not-her-secret@127.0.0.1:{broker.node.port}/team%20a"

    for script in ["send.py", "receive.py"]:
        line = one_line_error(broker.run(script, "--url", url))

        assert "login refused for user 'alice'" in line
        assert "not-her-secret" not in line


def test_unknown_vhost(broker):
    line = one_line_error(broker.send("--url", broker.node.url(vhost="nowhere")))

    assert "virtual host 'nowhere'" in line and "does not exist" in line


# -- TLS ------------------------------------------------------------------------

def test_send_and_receive_over_tls_with_the_ca_in_ssl_cert_file(broker):
    env = broker.env(AMQP_URL=broker.tls_url, SSL_CERT_FILE=broker.ca_file)

    sent = broker.send("over", "TLS", env=env)
    received = broker.receive("--count", "1", env=env)

    assert sent.returncode == 0, sent.stderr
    assert received.stdout_lines[1] == " [x] Received 'over TLS'"


def test_server_certificate_not_trusted_fails_with_one_clear_line(broker):
    env = broker.env(AMQP_URL=broker.tls_url, SSL_CERT_FILE=None)

    for script in ["send.py", "receive.py"]:
        line = one_line_error(broker.run(script, env=env))

        assert "certificate verification failed" in line
        assert "guest:guest" not in line


# -- the broker going away ------------------------------------------------------

@pytest.mark.parametrize("how", ["restart", "crash"])
def test_receive_survives_a_broker_restart(broker, how):
    receiver = broker.start("receive.py")
    receiver.wait_for_line("Waiting for messages")

    if how == "restart":
        broker.close_connections()
        broker.node.restart()
    else:
        broker.crash_and_restart()

    receiver.wait_for_line("lost the connection", stderr=True)
    receiver.wait_for_line("reconnected", stderr=True, timeout=60)
    assert broker.send("after", "the", how).returncode == 0
    assert receiver.wait_for_line("Received") == f" [x] Received 'after the {how}'"
    receiver.signal(signal.SIGINT)
    assert receiver.wait() == 0


def test_ctrl_c_while_waiting_for_the_broker_to_return_exits_0(broker):
    receiver = broker.start("receive.py")
    receiver.wait_for_line("Waiting for messages")
    broker.close_connections()
    broker.node.stop()
    try:
        receiver.wait_for_line("lost the connection", stderr=True)

        receiver.signal(signal.SIGINT)

        assert receiver.wait() == 0
        assert "Traceback" not in receiver.stderr
    finally:
        broker.node.start()


def test_queue_deleted_under_the_receiver_is_an_error_not_a_silent_exit(broker):
    receiver = broker.start("receive.py", "--queue", "doomed")
    receiver.wait_for_line("Waiting for messages")

    broker.channel().queue_delete("doomed")

    assert receiver.wait() == 1
    assert "ended the subscription to queue 'doomed'" in one_line_error(receiver)


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_work_longer_than_the_consumer_timeout_is_never_a_silent_success(strict_broker,
                                                                        queue_type):
    """3.x and 4.0 time out any queue and close the channel; 4.3 times out quorum queues
    only, and cancels the consumer. --work does not ask for a longer timeout."""
    quorum = ["--quorum"] if queue_type == "quorum" else []
    queue = f"jobs-{queue_type}"
    strict_broker.channel().queue_delete(queue)
    strict_broker.send(*quorum, "--queue", queue, "long job")

    worker = strict_broker.receive(*quorum, "--queue", queue, "--ack", "--work", "9",
                                   "--count", "1", timeout=60)

    assert worker.stdout_lines[1] == " [x] Received 'long job'"
    if strict_broker.lane.consumer_timeout_closes_channel or queue_type == "quorum":
        line = one_line_error(worker)
        assert f"consumer_timeout of queue '{queue}'" in line and "back in the queue" in line
        assert strict_broker.message_count(queue) == 1
    else:  # a classic queue on 4.3: no timeout, the work ends and is acknowledged
        assert worker.returncode == 0, worker.stderr
        assert strict_broker.message_count(queue) == 0


# -- bad input ------------------------------------------------------------------

def test_host_name_that_does_not_resolve(no_broker):
    line = one_line_error(no_broker.send("--url", "amqp://guest:pw@no-such-host.invalid/"))

    assert "no-such-host.invalid:5672 (host name not found)" in line


def test_message_larger_than_the_brokers_limit(strict_broker):
    line = one_line_error(strict_broker.send("x" * 2000))

    assert "message size 2000 is larger than configured max size 1024" in line
    assert strict_broker.message_count("hello") == 0


def test_url_list_skips_a_dead_broker(broker):
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"

    sent = broker.send("--url", dead, "--url", broker.url, "via the second")

    assert sent.returncode == 0
    assert broker.message_count("hello") == 1
