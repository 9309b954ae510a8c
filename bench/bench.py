"""How fast is it? send.py and receive.py side by side with pika's own ceiling.

Starts its own throwaway RabbitMQ (as the tests do), measures, prints tables,
stops the broker. Figures only: nothing here passes or fails on speed.

    bash bench/bench.sh            # the full run (about 20 minutes)
    bash bench/bench.sh --tiny     # tiny sizes, a smoke run (CI)
    bash bench/bench.sh --only 6   # one section
"""
import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pika

from node import Node, epmd_running, stop_epmd  # broker/, on PYTHONPATH (bench.sh)

PROJECT = Path(__file__).resolve().parent.parent

PYTHON = sys.executable
BENCH = PROJECT / "bench"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--only", type=int, action="append", choices=range(1, 7),
                        metavar="N", help="run section N only (repeat for more)")
    args = parser.parse_args()
    if args.tiny:
        args.sends, args.drain, args.rounds = 3, 300, 1
        args.memory_small, args.memory_large, args.latency = 100, 1000, 20
        args.bulk, args.loop, args.network = 300, 3, 30
    else:
        args.sends, args.drain, args.rounds = 20, 100_000, 3
        args.memory_small, args.memory_large, args.latency = 10_000, 1_000_000, 1000
        args.bulk, args.loop, args.network = 100_000, 30, 20_000
    return args


def main():
    args = parse_args()
    epmd_was_running = epmd_running()
    with tempfile.TemporaryDirectory(prefix="hello-rabbitmq-bench-") as data_dir:
        node = Node(data_dir).start()
        try:
            bench = Bench(node)
            print(f"RabbitMQ node on 127.0.0.1:{node.port}; pika {pika.__version__}, "
                  f"Python {sys.version.split()[0]}, {os.cpu_count()} cores", flush=True)
            print("--tiny: a smoke run; at these sizes start-up dominates and the target "
                  "verdicts mean nothing\n" if args.tiny else "", flush=True)
            sections = {
                1: lambda: bench.one_shot_send(args.sends),
                2: lambda: bench.drain(args.drain, args.rounds),
                3: lambda: bench.memory(args.memory_small, args.memory_large),
                4: lambda: bench.latency(args.latency),
                5: lambda: bench.bulk_send(args.bulk, args.rounds, args.loop),
                6: lambda: bench.network(args.network, args.rounds),
            }
            for number, section in sections.items():
                if not args.only or number in args.only:
                    section()
        finally:
            node.stop()
    if not epmd_was_running:
        stop_epmd()


@contextlib.contextmanager
def delay_proxy(port, delay_ms):
    """bench/delay_proxy.py in front of 127.0.0.1:port; yields the port it listens on."""
    proxy = subprocess.Popen([PYTHON, str(BENCH / "delay_proxy.py"), "--delay", str(delay_ms),
                              f"127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
    try:
        address = proxy.stdout.readline()
        if not address:
            raise RuntimeError(f"delay_proxy.py exited ({proxy.wait()})")
        yield int(address.rsplit(":", 1)[1])
    finally:
        proxy.terminate()
        proxy.wait()


def summary(values, unit="", scale=1.0, digits=0):
    values = [v * scale for v in values]
    fmt = f"{{:,.{digits}f}}"
    return (f"{fmt.format(statistics.median(values))}{unit} "
            f"({fmt.format(min(values))}-{fmt.format(max(values))})")


def verdict(ok):
    return "met" if ok else "MISSED"


class Bench:
    def __init__(self, node):
        self.node = node
        self.url = node.url()
        self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
        self.channel = self.connection.channel()
        self.env = dict(os.environ, AMQP_URL=self.url)

    # -- helpers ----------------------------------------------------------------

    def fill(self, queue, count, durable=False):
        """Put count messages with fixed-width bodies into a fresh queue."""
        self.channel.queue_delete(queue)
        self.channel.queue_declare(queue, durable=durable)
        properties = pika.BasicProperties(delivery_mode=2 if durable else 1)
        for number in range(count):
            self.channel.basic_publish("", queue, f"{number:08d}", properties)
        while self.channel.queue_declare(queue, passive=True).method.message_count < count:
            self.connection.sleep(0.05)

    def timed(self, command, **kwargs):
        start = time.perf_counter()
        subprocess.run(command, check=True, env=self.env, **kwargs)
        return time.perf_counter() - start

    def run_receive_until(self, args, lines, output):
        """Run receive.py (stdout to a file) until the file holds that many lines.

        Returns (seconds, peak RSS in KiB). Without --count, which takes one
        message at a time, as a worker runs.
        """
        expected = len(" [*] Waiting for messages. To exit press CTRL+C\n") + \
            lines * len(" [x] Received '00000000'\n")
        with open(output, "wb") as out:
            start = time.perf_counter()
            process = subprocess.Popen([PYTHON, str(PROJECT / "receive.py"), *args],
                                       stdout=out, env=self.env)
            while os.stat(output).st_size < expected:
                if process.poll() is not None:
                    raise RuntimeError(f"receive.py exited early ({process.returncode})")
                time.sleep(0.005)
            seconds = time.perf_counter() - start
            process.send_signal(signal.SIGTERM)
            _, status, usage = os.wait4(process.pid, 0)
        return seconds, usage.ru_maxrss

    def run_to_exit(self, command, stdout=subprocess.DEVNULL):
        """(seconds, peak RSS in KiB) of a command that exits by itself."""
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, env=self.env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if status != 0:
            raise RuntimeError(f"{command} failed ({status})")
        return seconds, usage.ru_maxrss

    # -- 1. one-shot send ---------------------------------------------------------

    def one_shot_send(self, rounds):
        commands = {
            "python -c 'import pika'": [PYTHON, "-c", "import pika"],
            "blog's lines (bench/blog_send.py)": [PYTHON, str(BENCH / "blog_send.py")],
            "send.py": [PYTHON, str(PROJECT / "send.py")],
            "amqp-publish (C client)": ["amqp-publish", "--url", self.url, "-r", "hello",
                                        "-b", "Hello World!"],
        }
        times = {name: [] for name in commands}
        for round_number in range(rounds):
            order = list(commands) if round_number % 2 == 0 else list(reversed(commands))
            for name in order:
                times[name].append(self.timed(commands[name], stdout=subprocess.DEVNULL))
        self.channel.queue_delete("hello")
        floor = statistics.median(times["blog's lines (bench/blog_send.py)"])
        print(f"1. One-shot send, wall time per run, median (min-max) over {rounds} runs")
        for name, values in times.items():
            print(f"   {name:36} {summary(values, ' ms', 1000, 1):>24}"
                  f"   x{statistics.median(values) / floor:.2f}")
        ratio = statistics.median(times["send.py"]) / floor
        print(f"   target send.py <= 1.10 x blog's lines: {ratio:.2f}, {verdict(ratio <= 1.10)}\n",
              flush=True)

    # -- 2. drain -------------------------------------------------------------------

    def drain(self, count, rounds):
        modes = {  # name: (receive.py args or None for auto-ack, raw args, durable)
            "default (auto-ack)": (None, ["auto", "0"], False),
            "--ack (prefetch 10)": (["--ack"], ["ack", "10"], False),
            "--ack --prefetch 1": (["--ack", "--prefetch", "1"], ["ack", "1"], False),
            "--durable": (None, ["auto", "0"], True),
        }
        whos = ["receive.py", "raw pika, print", "raw pika"]
        rates = {(mode, who): [] for mode in modes for who in whos}
        out = Path(tempfile.mkdtemp(prefix="bench-out-")) / "receive.out"
        for round_number in range(rounds):
            for mode, (script_args, raw_args, durable) in modes.items():
                queue = "bench-durable" if durable else "bench"
                for who in whos if round_number % 2 == 0 else reversed(whos):
                    self.fill(queue, count, durable)
                    if who.startswith("raw pika"):
                        command = [PYTHON, str(BENCH / "raw_consumer.py"), self.url, queue,
                                   str(count), *raw_args, *(["durable"] if durable else []),
                                   *(["print"] if who.endswith("print") else [])]
                        with open(out, "wb") as stdout:
                            seconds, _ = self.run_to_exit(command, stdout=stdout)
                    else:  # a worker as users run it: --count takes one message at a time
                        args = ["--queue", queue, *(script_args or []),
                                *(["--durable"] if durable else [])]
                        seconds, _ = self.run_receive_until(args, count, out)
                    rates[mode, who].append(count / seconds)
        print(f"2. Drain {count:,} messages (stdout to a file), msg/s, median (min-max) "
              f"over {rounds} rounds, interleaved")
        print(f"   {'mode':22} {'receive.py':>24} {'raw pika, print+flush':>24} "
              f"{'raw pika, no print':>24}  ratio to print+flush / to no print")
        for mode in modes:
            script, printing, raw = (rates[mode, who] for who in whos)
            to_printing = statistics.median(script) / statistics.median(printing)
            ratio = statistics.median(script) / statistics.median(raw)
            print(f"   {mode:22} {summary(script):>24} {summary(printing):>24} "
                  f"{summary(raw):>24}  {to_printing:.2f} / {ratio:.2f} "
                  f"(target >= 0.85 of no print: {verdict(ratio >= 0.85)})")
        speedup = (statistics.median(rates["--ack (prefetch 10)", "receive.py"])
                   / statistics.median(rates["--ack --prefetch 1", "raw pika"]))
        print(f"   --ack vs the official tutorial's worker (ack each, prefetch 1, raw pika): "
              f"x{speedup:.2f} (target >= 2.5: {verdict(speedup >= 2.5)})\n", flush=True)

    # -- 3. memory ------------------------------------------------------------------

    def memory(self, small, large):
        out = Path(tempfile.mkdtemp(prefix="bench-out-")) / "receive.out"
        peaks = {}
        for count in (small, large):
            self.fill("bench", count)
            _, peaks["default", count] = self.run_receive_until(["--queue", "bench"], count, out)
            self.fill("bench", count)
            _, peaks["--ack", count] = self.run_receive_until(["--queue", "bench", "--ack"],
                                                              count, out)
        self.channel.queue_delete("bench")
        print("3. Peak RSS of receive.py while draining a queue")
        for mode in ("default", "--ack"):
            ratio = peaks[mode, large] / peaks[mode, small]
            target = f" (target <= 1.2: {verdict(ratio <= 1.2)})" if mode == "--ack" else ""
            print(f"   {mode:8} {small:>9,} msgs: {peaks[mode, small] / 1024:6.1f} MiB   "
                  f"{large:>9,} msgs: {peaks[mode, large] / 1024:6.1f} MiB   "
                  f"x{ratio:.2f}{target}")
        print(flush=True)

    # -- 4. latency -----------------------------------------------------------------

    def latency(self, count):
        self.channel.queue_delete("bench-latency")
        receiver = subprocess.Popen(
            [PYTHON, str(PROJECT / "receive.py"), "--queue", "bench-latency"],
            stdout=subprocess.PIPE, env=self.env, text=True)
        receiver.stdout.readline()  # Waiting for messages
        latencies = []
        for number in range(count):
            start = time.perf_counter()
            self.channel.basic_publish("", "bench-latency", f"{number:08d}")
            line = receiver.stdout.readline()
            latencies.append(time.perf_counter() - start)
            assert f"{number:08d}" in line, line
        receiver.send_signal(signal.SIGTERM)
        receiver.wait()
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"4. End-to-end latency, publish to the receive.py line, {count:,} messages "
              f"one at a time: median {statistics.median(latencies) * 1000:.2f} ms, "
              f"p99 {p99 * 1000:.2f} ms")

    # -- 5. bulk send -------------------------------------------------------------

    def bulk_send(self, count, rounds, loop_count):
        lines = Path(tempfile.mkdtemp(prefix="bench-bulk-")) / "lines"
        lines.write_bytes(b"".join(b"message-%08d\n" % number for number in range(count)))
        raw = [PYTHON, str(BENCH / "raw_publisher.py"), self.url]
        runs = {  # (queue kind, who): command
            ("transient", "send.py -"): [PYTHON, str(PROJECT / "send.py"), "-"],
            ("transient", "raw pika, confirm each"): [*raw, "bench-bulk", "confirm"],
            ("durable", "send.py -"): [PYTHON, str(PROJECT / "send.py"), "-", "--durable"],
            ("durable", "raw pika, confirm each"): [*raw, "bench-bulk", "confirm", "durable"],
            ("durable", "raw pika, tx every 500"): [*raw, "bench-bulk", "tx", "durable"],
        }
        rates = {run: [] for run in runs}
        for round_number in range(rounds):
            for run in runs if round_number % 2 == 0 else reversed(list(runs)):
                self.channel.queue_delete("bench-bulk")
                command = runs[run] + (["--queue", "bench-bulk"] if run[1] == "send.py -" else [])
                with open(lines, "rb") as stdin:
                    rates[run].append(count / self.timed(command, stdin=stdin,
                                                          stdout=subprocess.DEVNULL))
        self.channel.queue_delete("bench-bulk")
        loop = self.timed(["bash", "-c", f'for i in $(seq {loop_count}); do "{PYTHON}" '
                           f'"{PROJECT / "send.py"}" --queue bench-bulk "message-$i"; done'],
                          stdout=subprocess.DEVNULL)
        self.channel.queue_delete("bench-bulk")
        loop_rate = loop_count / loop
        print(f"\n5. Bulk send of {count:,} lines, each confirmed, msg/s, median (min-max) "
              f"over {rounds} rounds, interleaved")
        for kind in ("transient", "durable"):
            ours = statistics.median(rates[kind, "send.py -"])
            for (run_kind, who), values in rates.items():
                if run_kind == kind:
                    print(f"   {kind:10} {who:24} {summary(values):>26}   "
                          f"x{statistics.median(values) / ours:.2f}")
            ratio = ours / statistics.median(rates[kind, "raw pika, confirm each"])
            print(f"   {kind:10} target send.py - >= 0.9 x raw pika, confirm each: "
                  f"{ratio:.2f}, {verdict(ratio >= 0.9)}")
        speedup = statistics.median(rates["transient", "send.py -"]) / loop_rate
        print(f"   a shell loop of one send.py per message ({loop_count} messages): "
              f"{loop_rate:.1f} msg/s; send.py - is x{speedup:,.0f} "
              f"(target >= 300: {verdict(speedup >= 300)})", flush=True)

    # -- 6. publishing over a network ---------------------------------------------

    PUBLISHERS = {  # short name: what the table calls it
        "send.py": "(a) send.py -",
        "confirm": "(b) pika, a confirm awaited per message",
        "window": "(c) pika, up to 1,000 unconfirmed",
        "amqp-publish": "(d) amqp-publish -l, no confirms",
    }

    def network(self, count, rounds, pilot=500, budget=20):
        """Each publisher on loopback and 10 ms away, transient and durable.

        A slow publisher sends `pilot` lines instead of `count` when `count` would
        take it longer than `budget` seconds (its first run, of `pilot` lines, tells).
        """
        with tempfile.TemporaryDirectory(prefix="bench-network-") as lines_dir, \
                delay_proxy(self.node.port, 5) as proxy_port:
            lines_dir = Path(lines_dir)
            for size in {count, min(count, pilot)}:
                (lines_dir / str(size)).write_bytes(
                    b"".join(b"message-%08d\n" % number for number in range(size)))
            urls = {"loopback": self.url,
                    "10 ms": f"amqp://guest:guest@127.0.0.1:{proxy_port}/%2F"}
            round_trips = {where: self.round_trip(url) for where, url in urls.items()}
            runs = [(where, kind, who) for where in urls for kind in ("transient", "durable")
                    for who in self.PUBLISHERS]
            sizes, rates = {}, {run: [] for run in runs}
            for round_number in range(rounds):
                for run in runs if round_number % 2 == 0 else reversed(runs):
                    where, kind, who = run
                    size = sizes.get(run, min(count, pilot))
                    rate = size / self.publish(who, urls[where], kind, size, lines_dir)
                    if run not in sizes and size < count and count / rate <= budget:
                        size = count
                        rate = size / self.publish(who, urls[where], kind, size, lines_dir)
                    sizes[run] = size
                    rates[run].append(rate)
        self.channel.queue_delete("bench-network")

        print(f"\n6. Publishing lines on loopback and 10 ms away, msg/s, median (min-max) over "
              f"{rounds} rounds, interleaved, [lines per run]")
        print(f"   10 ms: through bench/delay_proxy.py, 5 ms each way; one request's round trip "
              f"measured: loopback {round_trips['loopback'] * 1000:.2f} ms, "
              f"10 ms {round_trips['10 ms'] * 1000:.2f} ms")
        print(f"   {'':9} {'':40} {'transient':>36} {'durable':>36}")
        for where in urls:
            for who, name in self.PUBLISHERS.items():
                cells = [f"{summary(rates[where, kind, who])} [{sizes[where, kind, who]:,}]"
                         for kind in ("transient", "durable")]
                print(f"   {where:9} {name:40} {cells[0]:>36} {cells[1]:>36}")

        def ratio(where, kind, who):
            return (statistics.median(rates[where, kind, "send.py"])
                    / statistics.median(rates[where, kind, who]))

        for name, where, who, goal in (
                ("at 10 ms: send.py - --durable >= 50 x (b)", "10 ms", "confirm", 50),
                ("on loopback: send.py - --durable >= 5 x (b)", "loopback", "confirm", 5),
                ("stretch, on loopback: send.py - --durable >= 0.5 x (d)", "loopback",
                 "amqp-publish", 0.5)):
            durable = ratio(where, "durable", who)
            print(f"   target {name}: x{durable:.2f}, {verdict(durable >= goal)} "
                  f"(transient: x{ratio(where, 'transient', who):.2f})")
        print(flush=True)

    def publish(self, who, url, kind, count, lines_dir):
        """Seconds for one publisher to put `count` lines into a fresh queue."""
        queue, durable = "bench-network", kind == "durable"
        command = {
            "send.py": [PYTHON, str(PROJECT / "send.py"), "-", "--queue", queue,
                        *(["--durable"] if durable else [])],
            "confirm": [PYTHON, str(BENCH / "raw_publisher.py"), url, queue, "confirm",
                        *(["durable"] if durable else [])],
            "window": [PYTHON, str(BENCH / "raw_publisher.py"), url, queue, "window",
                       *(["durable"] if durable else [])],
            "amqp-publish": ["amqp-publish", "--url", url, "-r", queue, "-l",
                             *(["-p"] if durable else [])],
        }[who]
        self.channel.queue_delete(queue)
        if who == "amqp-publish":
            self.channel.queue_declare(queue, durable=durable)  # it declares nothing
        with open(lines_dir / str(count), "rb") as stdin:
            start = time.perf_counter()
            process = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL,
                                       env=dict(self.env, AMQP_URL=url))
            # No confirms: only the queue can say when amqp-publish's lines are in.
            while who == "amqp-publish" and self.message_count(queue) < count:
                if process.poll() not in (None, 0) or time.perf_counter() - start > 300:
                    break
                time.sleep(0.005)
            if process.wait() != 0:
                raise RuntimeError(f"{command} failed ({process.returncode})")
            seconds = time.perf_counter() - start
        if self.message_count(queue) != count:
            raise RuntimeError(f"{who}: {self.message_count(queue)} of {count} in the queue")
        return seconds

    def message_count(self, queue):
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def round_trip(self, url, times=20):
        """Median seconds of one request and its reply on a connection to url."""
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        samples = []
        for _ in range(times):
            start = time.perf_counter()
            channel.basic_qos(prefetch_count=1)
            samples.append(time.perf_counter() - start)
        connection.close()
        return statistics.median(samples)


if __name__ == "__main__":
    main()
