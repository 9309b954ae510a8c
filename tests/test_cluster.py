"""When one broker is not enough: a 3-node cluster, a quorum queue, its leader killed."""
import os
import signal

from helpers import Broker, one_line_error


def leader_of(cluster, queue):
    """The cluster node that leads the quorum queue."""
    for node in cluster.nodes:
        if node.is_running():
            out = node.ctl("list_queues", "-q", "--no-table-headers", "name", "leader").stdout
            leaders = dict(line.split() for line in out.splitlines() if line.strip())
            return next(n for n in cluster.nodes if n.name == leaders[queue])


def test_quorum_queue_loses_nothing_when_the_leader_node_dies(cluster, lane):
    broker = Broker(cluster.nodes[0], lane)
    broker.begin_test()
    env = broker.env(AMQP_URL=",".join(cluster.urls()))
    try:
        receiver = broker.start("receive.py", "--quorum", "--ack", "--queue", "orders", env=env)
        receiver.wait_for_line("Waiting for messages")
        leader = leader_of(cluster, "orders")
        assert leader is cluster.nodes[0]  # declared through the first URL, led there

        sent = []
        for number in range(1, 31):
            if number == 11:
                broker.close_connections()
                leader.kill()  # SIGKILL: the node dies mid-stream
                assert not leader.is_running()
            result = broker.send("--quorum", "--queue", "orders", f"order-{number}", env=env)
            if result.returncode == 0:
                sent.append(f" [x] Received 'order-{number}'")
            else:  # one line, saying what became of the message
                line = one_line_error(result)
                print(f"order-{number} not confirmed: {line}")
                assert any(fate in line for fate in ("nothing was sent", "is not in the queue",
                                                     "may or may not be in the queue")), line

        def received():
            return [line.replace(" (redelivered)", "") for line in receiver.stdout_lines
                    if line.startswith(" [x]")]

        broker.wait_until(lambda: set(sent) <= set(received()), "every confirmed message",
                          timeout=90)
        duplicates = len(received()) - len(set(received()))
        print(f"{len(sent)} of 30 sends confirmed, all received, {duplicates} duplicates")
        assert len(sent) >= 20  # the two nodes left keep the queue available
        receiver.wait_for_line("reconnected", stderr=True)
        receiver.signal(signal.SIGINT)
        assert receiver.wait() == 0
    finally:
        broker.end_test()


def test_send_with_a_url_list_whose_first_node_is_dead_still_delivers(cluster, lane):
    broker = Broker(cluster.nodes[1], lane)
    broker.begin_test()
    try:
        dead = cluster.nodes[0]
        if dead.is_running():
            dead.kill()
        urls = ["--url", dead.url(), "--url", cluster.nodes[1].url()]

        sent = broker.send("--quorum", "--queue", "invoices", "invoice-1", *urls)

        assert sent.returncode == 0, sent.stderr
        received = broker.receive("--quorum", "--queue", "invoices", "--count", "1", *urls)
        assert received.stdout_lines[1] == " [x] Received 'invoice-1'"
    finally:
        broker.end_test()


def test_a_quorum_queue_cut_off_from_its_majority_gives_no_confirm_and_send_says_so(cluster,
                                                                                    lane):
    """pika alone would wait for the confirm for as long as the majority is away."""
    alive = [node for node in cluster.nodes if node.is_running()]
    broker = Broker(alive[0], lane)
    broker.begin_test()
    try:
        assert broker.send("--quorum", "--queue", "stalled", "before").returncode == 0
        for node in alive[1:]:  # frozen, not dead: the leader still answers heartbeats
            os.kill(node.beam_pid(), signal.SIGSTOP)
        try:
            stalled = broker.start("send.py", "--quorum", "--queue", "stalled", "--timeout",
                                   "3", "during")
            stalled.wait(timeout=30)  # --timeout 3 + 15, not the length of the outage
        finally:
            for node in alive[1:]:
                os.kill(node.beam_pid(), signal.SIGCONT)

        line = one_line_error(stalled)
        assert "no confirm from the broker within --timeout + 15 s" in line
        assert "the message may or may not be in the queue" in line
        assert stalled.stdout == ""
    finally:
        broker.end_test()
