"""Refresh the MLflow UI screenshots in docs/ from a store that holds a search.

    python docs/screenshots.py sqlite:///mlflow.db [--dataset flowers17] [--out docs]

Starts `mlflow ui` on the store (127.0.0.1, a free port) and headless Chromium (Debian's
`chromium` package), opens what a user opens and writes three PNGs:

- `mlflow-ui-runs.png`: the search's link (`#/experiments/<id>?workflowType=machine_learning`)
  on the runs table, the search's trials unfolded: Dataset and Models columns filled;
- `mlflow-ui-search-run.png`: the search's parent run, its leaderboard (the description);
- `mlflow-ui-registry.png`: the registered model `cnn-benchmark-<dataset>`, alias champion.

Chromium is driven through its DevTools protocol with the standard library only (a minimal
WebSocket client), so nothing beyond the project's environment is installed for it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow

SETTLE_S = 12  # the UI's first render; then each step gets STEP_S
STEP_S = 6
CLOSE_ASSISTANT = """(() => { const c = [...document.querySelectorAll('button')]
  .find(b => b.getAttribute('aria-label') === 'Close'); if (c) c.click(); return !!c; })()"""
UNFOLD_SEARCH = """(() => { const b = document.querySelector(
  'button[data-component-id*=runnamecellrenderer]'); if (b) b.click(); return !!b; })()"""
SHOW_LEADERBOARD = """(() => { const m = [...document.querySelectorAll('button, a, span')]
  .find(e => e.textContent.trim() === 'Show more'); if (m) m.click();
  const t = [...document.querySelectorAll('table')].find(t => t.textContent.includes('val acc'));
  if (t) { t.scrollIntoView({block: 'start'}); document.querySelectorAll('*').forEach(e => {
    if (e.scrollTop > 0 && e.contains(t)) e.scrollTop -= 60; }); } return !!t; })()"""


class DevTools:
    """One page's DevTools WebSocket: send a command, wait for its answer."""

    def __init__(self, url: str) -> None:
        host_port, path = url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer, self.last_id = b"", 0
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("Chromium closed the DevTools connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _message(self) -> dict:
        data = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            data += self._read(n)
            if first & 0x80:  # the final fragment
                return json.loads(data)

    def call(self, method: str, **params) -> dict:
        self.last_id += 1
        body = json.dumps({"id": self.last_id, "method": method, "params": params}).encode()
        n, mask = len(body), os.urandom(4)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 1 << 16:
            head = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
        else:
            head = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(body)))
        while (answer := self._message()).get("id") != self.last_id:
            pass  # events
        return answer.get("result", {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def shoot(url: str, out: Path, steps: list[str], size: tuple[int, int]) -> None:
    """Open `url` in headless Chromium, run the JavaScript `steps`, save a PNG."""
    port = _free_port()
    chrome = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--remote-debugging-port={port}", f"--window-size={size[0]},{size[1]}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(f"http://127.0.0.1:{port}/json/version", 30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json") as answer:
            tabs = json.load(answer)
        page = DevTools(next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"])
        page.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1],
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        page.call("Page.navigate", url=url)
        time.sleep(SETTLE_S)
        for step in steps:  # each returns whether it found its element: retried until then
            for _ in range(5):
                done = page.call("Runtime.evaluate", expression=step, returnByValue=True)
                time.sleep(STEP_S)
                if done.get("result", {}).get("value"):
                    break
        out.write_bytes(base64.b64decode(page.call("Page.captureScreenshot")["data"]))
        print(out)
    finally:
        chrome.terminate()
        chrome.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="tracking URI of a store with a search")
    parser.add_argument("--dataset", default="flowers17")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    args = parser.parse_args()
    mlflow.set_tracking_uri(args.store)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string="tags.`benchmark.role` = 'search'",
                              order_by=["attributes.start_time DESC"])  # fmt: skip
    search = next((r for r in runs if r.data.tags.get("dataset") == args.dataset), None)
    if search is None:
        raise SystemExit(f"no {args.dataset} search in {args.store}")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ui = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", args.store,
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    out, base = Path(args.out), f"http://127.0.0.1:{port}/#/experiments"
    view = "?workflowType=machine_learning"
    experiment, run_id = search.info.experiment_id, search.info.run_id
    try:
        _wait(f"http://127.0.0.1:{port}/health", 180)
        shoot(f"{base}/{experiment}{view}", out / "mlflow-ui-runs.png",
              [UNFOLD_SEARCH, CLOSE_ASSISTANT], (2000, 560))  # fmt: skip
        shoot(f"{base}/{experiment}/runs/{run_id}{view}", out / "mlflow-ui-search-run.png",
              [CLOSE_ASSISTANT, SHOW_LEADERBOARD], (1500, 900))  # fmt: skip
        registry = f"http://127.0.0.1:{port}/#/models/cnn-benchmark-{args.dataset}"
        shoot(registry, out / "mlflow-ui-registry.png", [CLOSE_ASSISTANT], (1500, 820))
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
