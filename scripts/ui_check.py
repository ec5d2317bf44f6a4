#!/usr/bin/env python
"""Check in headless Chromium that a training run's page in the Prefect UI shows its artifacts.

    python scripts/ui_check.py --ui http://127.0.0.1:4200 --flow-run <id> --run-dir RUN --out DIR

The Prefect UI is a client-side app, so the check drives a real browser
through the Chrome DevTools Protocol (a websocket; ``websockets`` already
comes with Prefect) and waits for conditions in the rendered DOM rather
than for a fixed time. It asserts that

- the flow run's Artifacts tab lists the run's artifacts,
- the ``som-map`` artifact's page shows the U-matrix and the hit map as
  decoded pictures (``data:image/png`` images with a non-zero natural size),
- the ``segment-profiles`` artifact's page shows the profile table with the
  segment labels the run wrote (RUN/profiles.parquet),

and saves a screenshot of each page in DIR. Exit status: 0 checks passed,
1 a check failed, 3 no Chromium found (install Debian's ``chromium``).
"""

import argparse
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]
EXIT_NO_BROWSER = 3


class CheckFailed(Exception):
    pass


def find_chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((path for name in candidates if name and (path := shutil.which(name))), None)


@contextmanager
def browser(executable: str) -> Iterator["Page"]:
    """A headless Chromium with a new empty profile, and its first tab."""
    profile = Path(tempfile.mkdtemp(prefix="somseg-chromium-"))
    process = subprocess.Popen(
        [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=20) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for _ in range(5):  # its helper processes may still be writing to the profile for a moment
            shutil.rmtree(profile, ignore_errors=True)
            if not profile.exists():
                break
            time.sleep(0.5)


def _devtools_port(port_file: Path, process: subprocess.Popen, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CheckFailed(f"chromium exited at start with status {process.returncode}")
        if port_file.is_file() and port_file.read_text().strip():
            return int(port_file.read_text().splitlines()[0])
        time.sleep(0.2)
    raise CheckFailed("chromium did not open its DevTools port")


class Page:
    """The few DevTools Protocol calls the check needs."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.resize(1000)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:  # skip events until our answer arrives
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 45) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.5)
        text = self.evaluate("document.body ? document.body.innerText.slice(0, 1500) : ''")
        raise CheckFailed(f"timed out waiting for {what}; the page shows:\n{text}")

    def resize(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path, height: int = 1000) -> Path:
        # The UI scrolls inside its own panel, so a taller window is what shows more of a page.
        if height != 1000:
            self.resize(height)
            time.sleep(1.0)  # let the resized page lay out and paint
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        if height != 1000:
            self.resize(1000)
        return path


def _text_contains(*needles: str) -> str:
    checks = " && ".join(f"text.includes({json.dumps(needle)})" for needle in needles)
    return f"(() => {{ const text = document.body ? document.body.innerText : ''; return {checks}; }})()"


CLICK_ARTIFACTS_TAB = """(() => {
  const tab = Array.from(document.querySelectorAll('[role=tablist] li, .p-tab'))
    .find(e => e.innerText.trim() === 'Artifacts');
  if (!tab) return false;
  tab.click();
  return true;
})()"""

DECODED_PNGS = """(() => Array.from(document.images)
  .filter(img => img.src.startsWith('data:image/png') && img.complete && img.naturalWidth > 0)
  .map(img => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight})))()"""



def profile_table(labels: Sequence[str]) -> str:
    """Script that counts the page's tables holding every segment label."""
    found = " && ".join(f"text.includes({json.dumps(label)})" for label in labels)
    return f"""(() => Array.from(document.querySelectorAll('table')).map(table => table.innerText)
  .filter(text => {found}).length)()"""


def run_labels(run_dir: Path) -> list[str]:
    """The segment labels a training run wrote (its profiles.parquet)."""
    import pyarrow.parquet as pq

    return [str(label) for label in pq.read_table(run_dir / "profiles.parquet", columns=["label"]).column("label").to_pylist()]


def artifact_ids(api: str, flow_run_id: str) -> dict[str, str]:
    response = httpx.post(f"{api}/artifacts/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}, timeout=30)
    response.raise_for_status()
    return {artifact["key"]: artifact["id"] for artifact in response.json() if artifact.get("key")}


def check(ui: str, flow_run_id: str, out: Path, executable: str, labels: Sequence[str]) -> dict[str, Any]:
    """Run the three page checks; the screenshots and what was found."""
    out.mkdir(parents=True, exist_ok=True)
    ids = artifact_ids(f"{ui}/api", flow_run_id)
    missing = {"som-map", "segment-profiles", "training-summary", "training-data-quality"} - set(ids)
    if missing:
        raise CheckFailed(f"flow run {flow_run_id} lacks artifacts {sorted(missing)}; it has {sorted(ids)}")
    found: dict[str, Any] = {}
    with browser(executable) as page:
        # The run page picks its tab once the run has loaded (a ?tab= in the URL
        # that comes too early is replaced by Logs), so click the tab like a user.
        page.open(f"{ui}/runs/flow-run/{flow_run_id}")
        page.wait_for(CLICK_ARTIFACTS_TAB, "the run page's Artifacts tab")
        page.wait_for(_text_contains("som-map", "segment-profiles", "training-summary"), "the run's artifact list")
        found["run_page"] = str(page.screenshot(out / "flow-run-artifacts.png"))

        page.open(f"{ui}/artifacts/artifact/{ids['som-map']}")
        pictures = page.wait_for(f"(() => {{ const p = {DECODED_PNGS}; return p.length >= 2 ? p : null; }})()",
                                 "the U-matrix and hit map pictures")
        if {p["alt"] for p in pictures} != {"U-matrix", "Hit map"}:
            raise CheckFailed(f"pictures shown: {pictures}")
        found["pictures"] = pictures
        found["map_page"] = str(page.screenshot(out / "som-map-artifact.png", height=1450))

        page.open(f"{ui}/artifacts/artifact/{ids['segment-profiles']}")
        page.wait_for(profile_table(labels), f"a table with the segment profiles ({', '.join(labels)})")
        found["profiles_page"] = str(page.screenshot(out / "segment-profiles-artifact.png"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ui", required=True, help="base URL of the Prefect server, e.g. http://127.0.0.1:4200")
    parser.add_argument("--flow-run", required=True, help="id of a completed training flow run")
    parser.add_argument("--run-dir", required=True, help="the run's output folder, whose segment labels the page must show")
    parser.add_argument("--out", default=tempfile.gettempdir(), help="folder for the screenshots")
    args = parser.parse_args(argv)
    executable = find_chromium()
    if executable is None:
        print("ui check: no chromium found (apt-get install -y chromium)", file=sys.stderr)
        return EXIT_NO_BROWSER
    try:
        found = check(args.ui.rstrip("/"), args.flow_run, Path(args.out), executable, run_labels(Path(args.run_dir)))
    except CheckFailed as failure:
        print(f"ui check FAILED: {failure}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
