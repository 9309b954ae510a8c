"""A TCP proxy that delays every byte by a fixed time each way: a broker "far away" on loopback.

The kernel here has no netem. Each chunk read is stamped with the time it is due
and written once that time has come: a delay line, not a sleep per chunk, so
order is kept and throughput is not limited (up to MAX_CHUNKS chunks in flight
each way). Connecting costs one round trip too, as a TCP handshake would.

    python bench/delay_proxy.py [--delay MS] HOST:PORT

Listens on a free 127.0.0.1 port, prints it (127.0.0.1:PORT), runs until SIGTERM or Ctrl+C.
"""
import argparse
import asyncio
import selectors
import signal

CHUNK = 256 * 1024
MAX_CHUNKS = 1024  # a stalled receiver stops the reading side instead of filling memory


async def delay_line(reader, writer, delay):
    """Copy reader to writer, each chunk `delay` seconds after it was read; EOF too."""
    loop = asyncio.get_running_loop()
    line = asyncio.Queue(MAX_CHUNKS)

    async def release():
        while True:
            due, data = await line.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    releaser = asyncio.create_task(release())
    try:
        while True:
            data = await reader.read(CHUNK)
            await line.put((loop.time() + delay, data))
            if not data:
                break
        await releaser
    finally:
        releaser.cancel()


async def serve(upstream_host, upstream_port, delay):
    async def connection(client_reader, client_writer):
        await asyncio.sleep(2 * delay)  # the SYN, SYN-ACK a real network would cost
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                upstream_host, upstream_port)
        except OSError:
            client_writer.close()
            return
        directions = [asyncio.create_task(delay_line(client_reader, upstream_writer, delay)),
                      asyncio.create_task(delay_line(upstream_reader, client_writer, delay))]
        try:
            await asyncio.gather(*directions)
        except (OSError, asyncio.CancelledError):
            pass  # a reset on one side ends both; so does stopping the proxy (quietly)
        finally:
            for task in directions:
                task.cancel()
            client_writer.close()
            upstream_writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    print(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()  # not wait_closed(): from 3.12 on it waits for every client to leave


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=5.0, metavar="MS",
                        help="delay each way in milliseconds (default 5: a 10 ms round trip)")
    parser.add_argument("upstream", metavar="HOST:PORT")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    # select() waits to the microsecond; epoll, asyncio's default, rounds up to the
    # millisecond, which made each 5 ms about 5.5. Threads cost several times the CPU.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve(host, int(port), args.delay / 1000))
    connections = asyncio.all_tasks(loop)  # ended with the proxy, as asyncio.run would
    for task in connections:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*connections, return_exceptions=True))
    loop.close()


if __name__ == "__main__":
    main()
