"""The blog's check in the web UI's own numbers: the management plugin's HTTP API,
which the UI reads, on a node of our own with the plugin (127.0.0.1 only)."""
import base64
import json
import time
import urllib.error
import urllib.request

import pytest

from helpers import TIMEOUT, Broker, make_node
from node import free_port


@pytest.fixture(scope="module")
def web_broker(lane, data_dirs, epmd_cleanup):
    web_port = free_port()
    node = make_node(lane, data_dirs(), plugins=["rabbitmq_management"], config_lines=[
        "management.tcp.ip = 127.0.0.1", f"management.tcp.port = {web_port}",
        "collect_statistics_interval = 500"])  # the UI's figures lag by up to this (ms)
    node.start()
    broker = Broker(node, lane)
    broker.api = f"http://127.0.0.1:{web_port}/api"
    broker.begin_test()
    yield broker
    broker.end_test()
    node.stop()


def messages_shown(api, queue):
    """The queue's "Total" messages as the UI shows them; None before the first figures."""
    request = urllib.request.Request(f"{api}/queues/%2F/{queue}", headers={
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response).get("messages")
    except urllib.error.HTTPError as error:
        if error.code == 404:  # no such queue (yet)
            return None
        raise


def wait_until_shown(api, queue, expected):
    deadline = time.monotonic() + TIMEOUT
    while (shown := messages_shown(api, queue)) != expected:
        assert time.monotonic() < deadline, f"the UI shows {shown!r} messages, not {expected}"
        time.sleep(0.2)


# The lane of the node local.py starts on Debian 12, the one in the screenshot: the UI's
# figures are the broker's own message counts, which every lane's tests check already.
@pytest.mark.lanes("rabbitmq3.10")
def test_send_leaves_one_message_in_hello_and_receive_count_1_takes_it(web_broker):
    api = web_broker.api
    assert messages_shown(api, "hello") is None

    sent = web_broker.send()
    assert sent.returncode == 0, sent.stderr
    wait_until_shown(api, "hello", 1)

    received = web_broker.receive("--count", "1")
    assert received.returncode == 0, received.stderr
    assert received.stdout_lines[-1] == " [x] Received 'Hello World!'"
    wait_until_shown(api, "hello", 0)
