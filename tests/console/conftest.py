"""Fixtures of the console's browser tests: the local runner (in-memory adapters, the
WhatsApp simulator) on a free loopback port, and Debian's Chromium driven by Playwright."""

import os
import re
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def base_url(tmp_path_factory):
    binary = os.environ.get("LOCAL_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "local"
    )
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.setdefault("RUST_LOG", "warn")
    with open(log, "w") as out:
        runner = subprocess.Popen([binary, "--port", "0"], stdout=out, stderr=subprocess.STDOUT, env=env)
    base = None
    for _ in range(200):
        m = re.search(r"http://127\.0\.0\.1:\d+", log.read_text())
        if m:
            try:
                urllib.request.urlopen(m.group(0) + "/health", timeout=1)
                base = m.group(0)
                break
            except OSError:
                pass
        if runner.poll() is not None:
            break
        time.sleep(0.1)
    if base is None:
        runner.kill()
        pytest.fail("the local runner did not start:\n" + log.read_text())
    yield base
    runner.terminate()
    runner.wait(timeout=10)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()
