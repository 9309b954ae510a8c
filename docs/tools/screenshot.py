"""Makes docs/web-ui.png: the web UI showing queue `hello` with the message send.py just sent.

    .venv/bin/python docs/tools/screenshot.py

Needs Debian's chromium (apt-get install chromium). Runs a throwaway RabbitMQ node
with the management plugin on free loopback ports (never the broker on 5672) and
headless Chromium driven over its DevTools pipe (no driver, no extra package), and
stops both. Standard library and broker/node.py only.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "broker"))
from node import Node, free_port  # noqa: E402

OUTPUT = PROJECT / "docs" / "web-ui.png"
SIZE = (1100, 692)
TIMEOUT = 30
# The flags that work on a closed network (without them Chromium keeps calling home).
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--remote-debugging-pipe"]


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"screenshot.py: timed out waiting for {what}")
        time.sleep(0.2)


def samples_at_one(web):
    """How many of the UI's recent figures (one per 5 s) show the queue holding 1 message."""
    request = urllib.request.Request(
        f"{web}/api/queues/%2F/hello?lengths_age=60&lengths_incr=5", headers={
            "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            queue = json.load(response)
    except OSError:
        return 0
    if queue.get("messages") != 1:
        return 0
    return sum(sample["sample"] == 1 for sample in queue["messages_details"]["samples"])


class Chromium:
    """Headless Chromium, spoken to over the DevTools protocol on fds 3 and 4."""

    def __init__(self, profile):
        to_chromium, self._out = os.pipe()
        self._in, from_chromium = os.pipe()
        os.set_inheritable(to_chromium, True)
        os.set_inheritable(from_chromium, True)
        self.process = subprocess.Popen(
            ["sh", "-c", f'exec "$@" 3<&{to_chromium} 4>&{from_chromium}', "sh", *CHROMIUM,
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_chromium, from_chromium), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=dict(os.environ, TMPDIR=profile))  # its sockets too
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer, self._id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=SIZE[0], height=SIZE[1],
                  deviceScaleFactor=1, mobile=False)

    def send(self, method, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")

    def call(self, method, **params):
        self.send(method, **params)
        while True:  # replies and events, each ended by a NUL byte
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    sys.exit("screenshot.py: chromium exited")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    sys.exit(f"screenshot.py: chromium: {method}: {reply['error']}")
                return reply["result"]

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self):
        """Browser.close ends Chromium's helper processes too, which SIGTERM does not."""
        self.session = None
        try:
            self.send("Browser.close")
            self.process.wait(TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        os.close(self._out)
        os.close(self._in)


def screenshot(web):
    profile = tempfile.mkdtemp(prefix="hello-screenshot-chromium-")
    try:
        browser = Chromium(profile)
        try:
            browser.call("Page.navigate", url=f"{web}/")
            wait_for(lambda: browser.js("!!document.querySelector('input[name=password]')"),
                     "the login form")
            browser.js("document.querySelector('input[name=username]').value = 'guest';"
                       "document.querySelector('input[name=password]').value = 'guest';"
                       "document.querySelector('input[type=submit]').click()")
            wait_for(lambda: browser.js("!!document.querySelector('#logout')"),
                     "the login")
            browser.js("location.hash = '#/queues/%2F/hello'")
            wait_for(lambda: browser.js("document.body.innerText.includes('Queue hello')"
                                        " && !!document.querySelector('canvas')"),
                     "the page of queue hello")
            png = browser.call("Page.captureScreenshot", format="png")["data"]
        finally:
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    OUTPUT.write_bytes(base64.b64decode(png))


def main():
    if not shutil.which("chromium"):
        sys.exit("screenshot.py: needs Debian's chromium: sudo apt-get install chromium")
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    with tempfile.TemporaryDirectory(prefix="hello-screenshot-") as data:
        node = Node(data, name="hello-screenshot", plugins=["rabbitmq_management"],
                    config_lines=["management.tcp.ip = 127.0.0.1",
                                  f"management.tcp.port = {web_port}",
                                  "collect_statistics_interval = 1000"])
        node.start()
        try:
            env = dict(os.environ, AMQP_URL=node.url())
            if subprocess.run([sys.executable, str(PROJECT / "send.py")], env=env).returncode:
                sys.exit("screenshot.py: send.py failed (its error is above)")
            # A few figures, so that the UI's chart shows the queue going from 0 to 1.
            wait_for(lambda: samples_at_one(web) >= 3, "the UI to count the message")
            screenshot(web)
        finally:
            node.stop()
    print(f"wrote {OUTPUT.relative_to(PROJECT)}")


if __name__ == "__main__":
    main()
