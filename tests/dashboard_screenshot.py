"""The dashboard's picture: a harvest an hour into its run, photographed in headless Chromium.

``python -m tests.dashboard_screenshot docs/dashboard.png`` makes the README's
picture; the screenshot test makes the same one and checks it is not blank.
The memory is a real SQLite file of 12,000 tasks with failures of three
causes; the run's heartbeat, paused by a server's 429 for 42 s, carries an
hour of history (made here: a test cannot wait an hour), with a slow start
and a dip where a server throttled.
"""

from __future__ import annotations

import base64
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from messor import SQLiteMemory
from messor.memories.base import COMPLETED, FAILED
from tests.browser import chromium, dashboard, screenshot

TOTAL = 12_000
DONE = 8_450
FAILURES = [
    ("LookupError: 404 Not Found: https://shop.example.org/product/{n}", 160),
    ("TimeoutError: no result after 30 s (attempt {n})", 41),
    ("requests.exceptions.HTTPError: 429 Too Many Requests for url: "
     "https://api.example.org/v2/items?page={n}", 12),
]  # fmt: skip


def make_harvest(path: Path, now: float) -> SQLiteMemory:
    """A SQLite memory mid-harvest, with a live run's heartbeat."""
    memory = SQLiteMemory(path)
    memory.store_tasks([(f"https://shop.example.org/product/{n}", {}) for n in range(TOTAL)])
    ids = [f"https://shop.example.org/product/{n}" for n in range(DONE)]
    failed: list[tuple[str, str, Any, str | None]] = []
    for start, (error, count) in enumerate(FAILURES):
        failed += [
            (ids[start + k * 7], FAILED, None, error.format(n=start + k)) for k in range(count)
        ]
    failed_ids = {row[0] for row in failed}
    done = [(i, COMPLETED, {"price": 9.99}, None) for i in ids if i not in failed_ids]
    memory.update_task_statuses(done + failed)
    memory.write_beat("3f9c2a71d0e84b6a", json.dumps(_beat(now, len(failed))))
    return memory


def _beat(now: float, failed: int) -> dict[str, Any]:
    started = now - 3600
    history: list[list[float]] = [[round(started, 1), 0]]
    done = 0.0
    for step in range(1, 361):
        # Ramps up, holds about 2.4/s, dips for a while where a server throttled.
        rate = 2.4 * min(1.0, step / 30) * (0.35 if 200 <= step < 230 else 1.0)
        rate *= 1 + 0.08 * math.sin(step / 5)
        done += rate * 10
        history.append([round(started + step * 10, 1), round(done)])
    return {
        "run_id": "3f9c2a71d0e84b6a", "host": "crawler-02", "pid": 48213, "started": started,
        "updated": now, "interval": 5.0, "known_total": TOTAL, "completed": DONE - failed,
        "failed": failed, "retried": 377, "skipped": 0, "rate": 2.35, "concurrency": 16,
        "in_flight": 16, "paused_until": now + 42, "pause_reason": "429 api.example.org",
        "throttled": 3, "usage": {"requests": 9210, "megabytes": 412.5}, "finished": False,
        "stopped_because": None, "history": history,
    }  # fmt: skip


def take(path: Path, directory: Path) -> tuple[Path, Any]:
    """Make the harvest in ``directory``, serve it, photograph the page into ``path``.

    Returns the path and what :func:`image_facts` found in the picture.
    """
    memory = make_harvest(directory / "shop.db", time.time())
    with (
        memory,
        dashboard(memory, "sqlite:///shop.db", allow_retry=True) as url,
        chromium() as driver,
    ):
        driver.get(url + "/")
        _wait(driver, "return document.querySelectorAll('#groups tbody tr').length === 3")
        _wait(driver, "return !!document.getElementById('chart-line').getAttribute('d')")
        png = screenshot(driver, path)
        facts = image_facts(driver, png.read_bytes())
    return path, facts


def image_facts(driver: Any, png: bytes) -> dict[str, int]:
    """Width, height and the number of distinct colours of a PNG, as the browser decodes it."""
    driver.get("about:blank")
    facts: dict[str, int] = driver.execute_async_script(
        """
        const [data, done] = arguments;
        const image = new Image();
        image.onload = () => {
          const canvas = document.createElement("canvas");
          canvas.width = image.width;
          canvas.height = image.height;
          const context = canvas.getContext("2d");
          context.drawImage(image, 0, 0);
          const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
          const colours = new Set();
          for (let i = 0; i < pixels.length; i += 4) {
            colours.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
          }
          done({width: image.width, height: image.height, colours: colours.size});
        };
        image.src = "data:image/png;base64," + data;
        """,
        base64.b64encode(png).decode(),
    )
    return facts


def _wait(driver: Any, condition: str, seconds: float = 30) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: d.execute_script(condition))


if __name__ == "__main__":
    import tempfile

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png")
    with tempfile.TemporaryDirectory() as scratch:
        print(take(target, Path(scratch)))
