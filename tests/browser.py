"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium,
and a dashboard served by uvicorn on a free loopback port, for the dashboard's tests.

Where the browser is not installed the browser tests skip; in CI (``CI=true``)
they fail instead, because ``.ci/run`` installs it. No browser is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from messor import Memory
from tests.redis_server import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1400",
)  # fmt: skip


def require_browser() -> None:
    """Skip (or, in CI, fail) unless Debian's chromium and chromium-driver are installed."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = (
            f"{', '.join(missing)} not installed (Debian: apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run must provide it", pytrace=False)
        pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium with a fresh profile, ended afterwards."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="messor-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def dashboard(memory: Memory, label: str = "test", **options: Any) -> Iterator[str]:
    """The dashboard of ``memory`` served on a free loopback port; yields its base URL."""
    import uvicorn

    from messor.dashboard.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(memory, label, **options), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(1000):
        if server.started:
            break
        started.wait(0.01)
    else:
        raise RuntimeError("the dashboard did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def screenshot(driver: Any, path: Path) -> Path:
    """The page as a PNG at ``path``, whole (as tall as its content)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, int(height) + 40))
    driver.save_screenshot(str(path))
    return path
