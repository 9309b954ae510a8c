"""Fixtures: throwaway RabbitMQ nodes for the tests, on every lane (see helpers.LANES).

Every test session starts its own nodes on free loopback ports with data in
temporary directories, and stops them: never the user's broker on 5672.
`pytest --lane rabbitmq4.3` runs one lane only. A test that needs no broker (what
the scripts refuse before connecting) uses `no_broker` and runs once, not per lane.
"""
import socket
import tempfile
import threading
from pathlib import Path

import pytest
import trustme

import rabbitmq4
from helpers import (
    FAILED,
    LANES,
    Broker,
    NoBroker,
    cannot_run,
    failed,
    installed_version,
    make_node,
)
from node import Cluster, epmd_running, free_port, remove_tree, stop_epmd


def pytest_addoption(parser):
    parser.addoption("--lane", action="append", choices=list(LANES),
                     help="run only this RabbitMQ lane (may be repeated)")


def pytest_configure(config):
    config.addinivalue_line("markers", "lanes(*names): run the test on these lanes only")


def pytest_collection_modifyitems(config, items):
    """--lane, and @pytest.mark.lanes: a test meant for one lane is not listed on others."""
    chosen = config.getoption("lane") or list(LANES)

    def wanted(item):
        lane = item.callspec.params.get("lane") if hasattr(item, "callspec") else None
        only = item.get_closest_marker("lanes")
        return lane is None or (lane in chosen and (only is None or lane in only.args))

    keep = [item for item in items if wanted(item)]
    config.hook.pytest_deselected(items=[item for item in items if not wanted(item)])
    items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[FAILED] = True  # the fixtures' teardown then clears the whole node
    return report


@pytest.fixture(scope="session", params=list(LANES))
def lane(request):
    """One RabbitMQ version; the 4.x ones run in a debootstrapped root (root only).
    A lane that cannot run here is skipped with the reason (under CI: fails); a lane
    whose RabbitMQ is not the version it is named after fails, naming what it found."""
    lane = LANES[request.param]
    if lane.root is not None:
        reason = rabbitmq4.why_unavailable(lane.version)
        if reason:
            cannot_run(reason)
        rabbitmq4.prepare(lane.version)
    found = installed_version(lane.root)
    if found is None and lane.root is None:
        cannot_run(lane.wrong_version(found) + " (scripts/test.sh installs it)")
    wrong = lane.wrong_version(found)
    if wrong:
        pytest.fail(wrong, pytrace=False)
    return lane


@pytest.fixture(scope="session")
def data_dirs(lane):
    """Makes temporary data dirs (inside the root for the 4.x lanes); removes them."""
    made = []

    def make():
        base = lane.root / "tmp" if lane.root else None
        made.append(Path(tempfile.mkdtemp(prefix="hello-rabbitmq-test-", dir=base)))
        return made[-1]

    yield make
    for path in made:
        remove_tree(path)


@pytest.fixture(scope="session")
def epmd_cleanup():
    """Erlang's port mapper outlives the nodes; stop it if we started it."""
    was_running = epmd_running()
    yield
    if not was_running:
        stop_epmd()


def tls_listener(node, port):
    """A CA and a server certificate for 127.0.0.1/localhost (trustme), and the
    rabbitmq.conf lines for a TLS listener that uses them."""
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    tls = node.data_dir / "tls"
    tls.mkdir()
    ca.cert_pem.write_to_path(tls / "ca.pem")
    server.cert_chain_pems[0].write_to_path(tls / "server.pem")
    server.private_key_pem.write_to_path(tls / "server.key")
    inside = node.seen_by_node(tls)
    return tls / "ca.pem", [
        f"listeners.ssl.default = 127.0.0.1:{port}",
        f"ssl_options.cacertfile = {inside}/ca.pem",
        f"ssl_options.certfile = {inside}/server.pem",
        f"ssl_options.keyfile = {inside}/server.key",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ]


@pytest.fixture(scope="session")
def session_broker(lane, data_dirs, epmd_cleanup):
    """The lane's main node, with a TLS listener too."""
    node = make_node(lane, data_dirs())
    tls_port = free_port()
    ca_file, tls_config = tls_listener(node, tls_port)
    node.config_lines += tls_config
    node.start()
    broker = Broker(node, lane)
    broker.tls_port = tls_port
    broker.tls_url = f"amqps://guest:guest@localhost:{tls_port}/%2F"
    broker.ca_file = str(ca_file)
    yield broker
    node.stop()


@pytest.fixture(scope="module")  # one file uses it: it does not idle through the rest
def strict_session_broker(lane, data_dirs, epmd_cleanup):
    """A node with a 5 s consumer timeout (checked every second) and 1 KiB messages at most."""
    node = make_node(lane, data_dirs(),
                     config_lines=["consumer_timeout = 5000", "max_message_size = 1024"],
                     advanced_config=lane.consumer_timeout_tick).start()
    yield Broker(node, lane)
    node.stop()


@pytest.fixture(scope="module")
def cluster(lane, data_dirs, epmd_cleanup):
    """Three nodes of the lane joined into one cluster, on free loopback ports."""
    nodes = Cluster(data_dirs(), [free_port() for _ in range(3)], name="cluster",
                    root=lane.root, config_lines=lane.config).start()
    yield nodes
    nodes.stop()


@pytest.fixture
def broker(session_broker, request):
    """The session's broker; after the test, its scripts ended and its queues deleted."""
    session_broker.begin_test()
    yield session_broker
    session_broker.end_test(failed(request))


@pytest.fixture
def strict_broker(strict_session_broker, request):
    strict_session_broker.begin_test()
    yield strict_session_broker
    strict_session_broker.end_test(failed(request))


@pytest.fixture(scope="session")
def ca_file(tmp_path_factory):
    """A CA certificate, for URLs whose ssl_options name one."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(path)
    return str(path)


@pytest.fixture
def no_broker(ca_file):
    """No broker: for what the scripts must refuse before connecting (see NoBroker)."""
    scripts = NoBroker(ca_file)
    yield scripts
    scripts.close()


@pytest.fixture
def closed_port():
    """A loopback port where nothing listens."""
    return free_port()


@pytest.fixture
def silent_server():
    """A TCP server on loopback that accepts connections and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        held = []

        def accept_and_hold():
            while True:
                try:
                    held.append(server.accept()[0])
                except OSError:  # the server is closed: the test is over
                    return

        threading.Thread(target=accept_and_hold, daemon=True).start()
        yield server.getsockname()[1]


@pytest.fixture
def http_server():
    """A TCP server on loopback that answers anything with an HTTP error and hangs up."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve():
            while True:
                try:
                    client, _ = server.accept()
                except OSError:
                    return
                with client:
                    client.recv(100)
                    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=serve, daemon=True).start()
        yield server.getsockname()[1]
