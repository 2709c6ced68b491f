"""The console on a 10,000-campaign tenant (issue 15: "fast on a 10,000-campaign
tenant"): creates the campaigns through the API of a running local runner, then times
what an operator waits for in headless Chromium. Figures, not a test: the README quotes
them.

    cargo build -p local && (target/debug/local --port 3999 &) && \
      .venv/bin/python tests/console/scale.py http://127.0.0.1:3999
"""

import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import expect, sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3999"
TENANT = "scale"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000


def api(method, path, body=None):
    req = urllib.request.Request(
        BASE + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-tenant-id": TENANT},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main():
    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: api("POST", "/campaigns", {"name": f"Campaign {i:05d}"}), range(N)))
    print(f"created {N} campaigns in {time.time() - started:.1f} s")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = b.new_context(viewport={"width": 1280, "height": 800}).new_page()
        page.goto(BASE + "/console#/settings")
        page.get_by_label("Tenant").fill(TENANT)
        page.get_by_role("button", name="Switch").click()
        expect(page.locator(f'#main[data-tenant="{TENANT}"]')).to_have_count(1)
        for label, hash_, wait in [
            ("first page of the grid", "#/campaigns", "Campaign 00000"),
            ("a page further on (cursor)", None, "Campaign 00025"),
            ("a name filter matching one campaign", "#/campaigns?name=09999", "Campaign 09999"),
            ("a filter matching none (the longest scan)", "#/campaigns?status=RUNNING", "No campaigns match"),
        ]:
            t0 = time.time()
            if hash_:
                page.evaluate(f"location.hash = {json.dumps(hash_)}")
            else:
                page.get_by_role("button", name="Next page →").click()
            expect(page.get_by_text(wait).first).to_be_visible(timeout=60000)
            print(f"{label}: {1000 * (time.time() - t0):.0f} ms")
        b.close()


main()
