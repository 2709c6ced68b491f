"""The operator console in a real headless Chromium (issue 15): an operator sets up an
account and a template, imports contacts from a CSV file into a list, creates a campaign
through the form (a validation error shown on its field first), launches it against the
simulator, watches the hopper counts and the chart move, pauses and resumes, opens a
conversation and exports the CSV; on a desktop screen and on a phone-width one."""

import csv
import io
import json
import os
import re
import urllib.request

import pytest
from playwright.sync_api import expect

CONTACTS = 12
# One sending number per tenant: a number belongs to one tenant only.
SENDERS = {"desk": "106540352242922", "phone": "106540352242923"}


def sim_reply(base, sender, phone, text):
    req = urllib.request.Request(
        base + "/local/sim/reply",
        data=json.dumps({"phone": phone, "text": text, "phone_number_id": sender}).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()


def shot(page, tenant, name):
    """With CONSOLE_SHOTS=<dir>, keeps a screenshot of each step for a person to look at."""
    folder = os.environ.get("CONSOLE_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        label = {"desk": "desktop"}.get(tenant, tenant)
        page.screenshot(path=os.path.join(folder, f"{label}-{name}.png"), full_page=True)


def switch_tenant(page, tenant):
    """Signs in as `tenant` (local: the tenant box) and waits for a page of its data."""
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_role("button", name="Switch").click()
    expect(page.locator(f'#main[data-tenant="{tenant}"]')).to_have_count(1)


def assert_labelled(page):
    """Every visible input, select and text area has a label (or an aria-label)."""
    missing = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
          .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
          .map((el) => el.outerHTML.slice(0, 160))"""
    )
    assert not missing, f"inputs without a label on {page.url}: {missing}"


def assert_fits(page):
    """Nothing wider than the screen: neither the page nor any table inside its frame."""
    wide = page.evaluate(
        """() => {
          const out = [];
          if (document.documentElement.scrollWidth > window.innerWidth) out.push(`page ${document.documentElement.scrollWidth}px`);
          for (const w of document.querySelectorAll('.table-wrap')) if (w.scrollWidth > w.clientWidth + 1) out.push(`table ${w.scrollWidth}px in ${w.clientWidth}px`);
          return out;
        }"""
    )
    assert not wide, f"wider than the {page.viewport_size['width']}px screen on {page.url}: {wide}"


def screen(page, label, name):
    """Checks a screen as a whole (labels, width) and keeps its picture when asked."""
    assert_labelled(page)
    assert_fits(page)
    shot(page, label, name)


def count(page, key):
    return int(page.locator(f'[data-count="{key}"] .n').inner_text().replace(",", ""))


def operator_flow(page, base, tenant, tmp_path):
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15000)
    page.goto(base + "/")
    # `/` sends the browser to the console; sign in as the tenant (local: x-tenant-id).
    expect(page).to_have_url(re.compile(r"/console"))
    switch_tenant(page, tenant)
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.get_by_text("No campaigns match")).to_be_visible()
    screen(page, tenant, "campaigns-empty")

    # An account and an approved template.
    page.get_by_role("link", name="Accounts & templates").click()
    page.get_by_label("Name", exact=True).first.fill("Main number")
    page.get_by_label("Sender id (Meta phone_number_id)").fill(SENDERS[tenant])
    page.get_by_label("Token reference (never the token itself)").fill(f"secretsmanager:campaigns/{tenant}/meta-token")
    page.get_by_role("button", name="Add account").click()
    # Meta accounts need their WhatsApp Business Account id: the API's 422 shows on it.
    expect(page.get_by_text("waba_id: is required")).to_be_visible()
    expect(page.get_by_label("WhatsApp Business Account id")).to_be_focused()
    page.get_by_label("WhatsApp Business Account id").fill("100000000000001")
    page.get_by_role("button", name="Add account").click()
    expect(page.get_by_role("cell", name="Main number")).to_be_visible()
    tpl = page.locator("form", has=page.get_by_role("button", name="Register template"))
    tpl.get_by_label("Name", exact=True).fill("spring_offer")
    tpl.get_by_label("Quick replies").fill("Yes, No")
    tpl.get_by_label(re.compile("^Body")).fill("Hi {{1}}, spring sale: code {{2}}. Interested?")
    tpl.get_by_role("button", name="Register template").click()
    expect(page.get_by_role("cell", name="spring_offer")).to_be_visible()
    expect(page.get_by_role("cell", name="APPROVED")).to_be_visible()
    screen(page, tenant, "accounts-templates")

    # Contacts from a CSV file into a new list; the invalid row is reported by its line.
    page.get_by_role("link", name="Contacts & lists").click()
    page.get_by_label("New list name").fill("VIPs")
    page.get_by_role("button", name="Create list").click()
    expect(page.get_by_role("cell", name="VIPs")).to_be_visible()
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["phone", "name", "code"])
    phones = [f"+91981230{i:04d}" for i in range(CONTACTS)]
    for i, p in enumerate(phones):
        w.writerow([p, f"Customer {i}", f"SPRING{i:03d}"])
    w.writerow(["+91 12345", "Bad", "X"])
    path = tmp_path / "contacts.csv"
    path.write_text(rows.getvalue())
    page.get_by_label(re.compile("^CSV file")).set_input_files(str(path))
    page.get_by_label("Add the contacts to").select_option(label="VIPs")
    page.get_by_role("button", name="Import", exact=True).click()
    report = page.locator("[data-import]")
    expect(report).to_contain_text(f"{CONTACTS} imported, 1 invalid")
    expect(report.get_by_role("cell", name=str(CONTACTS + 2), exact=True)).to_be_visible()
    # At phone width a cell is named with its column too ("Name Customer 0").
    expect(page.get_by_role("cell", name=re.compile(r"Customer 0$"))).to_be_visible()
    screen(page, tenant, "contacts-import")

    # The campaign form: a rule broken is shown on the field the API names.
    page.get_by_role("link", name="Campaigns", exact=True).click()
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Name", exact=True).fill("Spring offer")
    page.get_by_label("Account", exact=True).select_option(label="Main number (meta)")
    page.get_by_label("Template (approved only)").select_option(label="spring_offer (en, MARKETING)")
    preview = page.get_by_label("Template preview")
    expect(preview).to_contain_text("Hi Asha, spring sale")
    page.get_by_label("Source of {{2}}").select_option("field")
    page.get_by_label("Field, tag or text for {{2}}").fill("code")
    expect(preview).to_contain_text("code [code]")
    page.get_by_label("Pace", exact=True).fill("4")
    dup = page.get_by_label("Skip contacts sent to in the last N days (1-7)")
    dup.fill("9")
    page.get_by_role("checkbox", name="VIPs").check()
    # Before saving, the form says how many contacts the audience reaches.
    expect(page.locator("[data-reach]")).to_contain_text(f"{CONTACTS} contact(s) would be in the campaign")
    screen(page, tenant, "campaign-form")
    page.get_by_role("button", name="Create campaign").click()
    error = page.locator('[data-field="duplicate_window_days"] .error')
    expect(error).to_be_visible()
    expect(error).to_contain_text("between 1 and 7")
    expect(dup).to_have_attribute("aria-invalid", "true")
    screen(page, tenant, "campaign-form-error")
    dup.fill("")
    page.get_by_role("button", name="Create campaign").click()

    # The detail view: READY with the list attached; launch and watch it move.
    expect(page.get_by_role("heading", name="Spring offer")).to_be_visible()
    expect(page.locator(".badge.status-READY")).to_be_visible()
    expect(page.locator('[data-count="total"] .n')).to_have_text(str(CONTACTS))
    assert count(page, "FRESH") == CONTACTS
    page.get_by_role("button", name="Launch").click()
    expect(page.locator(".badge.status-RUNNING")).to_be_visible()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-stat=sent]').textContent) > 0", timeout=20000
    )
    page.get_by_role("button", name="Pause").click()
    expect(page.locator(".badge.status-PAUSED")).to_be_visible()
    # The detail page offers only what the state allows now.
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    paused_at = count(page, "FRESH")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".badge.status-RUNNING")).to_be_visible()
    # Live: the counts and the chart follow the campaign without a reload.
    page.wait_for_function(
        f"() => Number(document.querySelector('[data-stat=sent]').textContent) === {CONTACTS}",
        timeout=30000,
    )
    assert count(page, "FRESH") == 0 and paused_at > 0
    screen(page, tenant, "campaign-detail")
    page.wait_for_function(
        "() => Number(document.querySelector('[data-stat=delivered]').textContent) > 0", timeout=20000
    )

    # The pending tab filters by state.
    page.get_by_label("State", exact=True).select_option("FRESH")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("tabpanel")).to_contain_text("No entries here.")
    page.get_by_label("State", exact=True).select_option("")
    page.get_by_role("button", name="Show").click()

    # A reply, then the conversation of that contact.
    sim_reply(base, SENDERS[tenant], phones[0].lstrip("+"), "Yes please, call me after 6")
    page.get_by_role("tab", name="History").click()
    page.get_by_role("tab", name="Pending").click()
    page.get_by_role("link", name=phones[0]).click()
    expect(page.get_by_role("heading", name=f"Conversation with {phones[0]}")).to_be_visible()
    messages = page.get_by_label("Messages")
    expect(messages).to_contain_text("Hi Customer 0, spring sale: code SPRING000. Interested?")
    if not messages.get_by_text("Yes please, call me after 6").is_visible():
        page.reload()
    expect(page.get_by_label("Messages")).to_contain_text("Yes please, call me after 6")
    screen(page, tenant, "conversation")
    page.get_by_role("link", name="← The campaign").click()

    # The CSV export.
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export CSV").click()
    exported = (tmp_path / "export.csv")
    dl.value.save_as(exported)
    lines = exported.read_text().strip().splitlines()
    assert len(lines) == CONTACTS + 1, lines[:3]

    # The grid: badge, progress, and the actions menu with what the state allows.
    page.get_by_role("link", name="← Campaigns").click()
    row = page.get_by_role("row", name=re.compile("Spring offer"))
    expect(row.locator(".badge.status-RUNNING")).to_be_visible()
    expect(row).to_contain_text(f"{CONTACTS}/{CONTACTS} (100%)")
    expect(row.get_by_role("cell", name=re.compile("VIPs$"))).to_be_visible()
    row.get_by_text("Actions").click()
    expect(row.get_by_role("button", name="Pause")).to_be_enabled()
    expect(row.get_by_role("button", name="Launch")).to_be_disabled()
    expect(row.get_by_role("button", name="Reset list")).to_be_disabled()
    expect(row).to_contain_text("pause it first")
    screen(page, tenant, "campaigns-actions-menu")
    # Reset asks first and says everyone gets the message again; keeping it changes nothing.
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge.status-PAUSED")).to_be_visible()
    row = page.get_by_role("row", name=re.compile("Spring offer"))
    row.get_by_text("Actions").click()
    row.get_by_role("button", name="Reset list").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("everyone in the campaign will get the message again")
    dialog.get_by_role("button", name="Keep it").click()
    expect(row.locator(".badge.status-PAUSED")).to_be_visible()
    # A paused campaign is edited: the changed variable is saved, and only what changed
    # is sent.
    row.get_by_text("Actions").click()
    row.get_by_role("button", name="Edit").click()
    page.get_by_label("Field, tag or text for {{2}}").fill("coupon")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".badge.status-PAUSED")).to_be_visible()
    campaign_id = page.url.rsplit("/", 1)[-1]
    saved = api(base, tenant, "GET", f"/campaigns/{campaign_id}")
    assert saved["variables"][1] == {"source": "field", "name": "coupon"}, saved["variables"]
    assert not errors, errors


@pytest.mark.parametrize(
    "viewport,tenant",
    [({"width": 1280, "height": 800}, "desk"), ({"width": 390, "height": 844}, "phone")],
    ids=["desktop", "phone"],
)
def test_r11_1_operator_runs_a_campaign_from_the_console(browser, base_url, tmp_path, viewport, tenant):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    try:
        operator_flow(page, base_url, tenant, tmp_path)
        # Nothing wider than the screen: the layout holds at this width.
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the {viewport['width']}px screen"
    finally:
        context.close()


def test_r11_1_console_files_are_served_without_credentials(base_url):
    for path, kind in [("/console", "text/html"), ("/console/app.js", "text/javascript"), ("/console/style.css", "text/css")]:
        with urllib.request.urlopen(base_url + path, timeout=5) as r:
            assert r.headers["content-type"].startswith(kind), (path, r.headers["content-type"])
            assert "script-src 'self'" in r.headers["content-security-policy"]
    with urllib.request.urlopen(base_url + "/console/config.json", timeout=5) as r:
        assert json.load(r) == {"auth": "tenant_header", "tenant": "demo"}


def api(base, tenant, method, path, body=None):
    req = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-tenant-id": tenant},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def ready_campaign(base, tenant, sender):
    """A READY campaign of two contacts, set up through the API as a script would."""
    acc = api(base, tenant, "POST", "/accounts", {
        "name": "Keys", "sender_id": sender, "waba_id": "100000000000009",
        "token_ref": f"secretsmanager:campaigns/{tenant}/meta-token"})
    api(base, tenant, "POST", "/templates", {
        "account_id": acc["id"], "name": "hello", "language": "en", "category": "UTILITY", "body": "Hello {{1}}"})
    api(base, tenant, "POST", "/contacts", [{"phone": f"+9198123330{i:02d}", "name": f"K{i}"} for i in range(2)])
    lst = api(base, tenant, "POST", "/lists", {"name": "two"})
    api(base, tenant, "POST", f"/lists/{lst['id']}/members", {"phones": [f"9198123330{i:02d}" for i in range(2)]})
    c = api(base, tenant, "POST", "/campaigns", {
        "name": "Keyboard run", "account_id": acc["id"], "template": {"name": "hello", "language": "en"},
        "variables": [{"source": "contact_name"}], "pacing": {"unit": "messages_per_second", "value": 1}})
    api(base, tenant, "POST", f"/campaigns/{c['id']}/lists", {"list_id": lst["id"]})
    return c


def test_r11_2_block_lists_opt_outs_and_the_keyboard(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15000)
    try:
        page.goto(base_url + "/console#/blocks")
        switch_tenant(page, "keys")
        expect(page.get_by_role("heading", name="Block lists & opt-outs")).to_be_visible()
        # A block list: numbers added (the one that is not a number named), then removed.
        page.get_by_label("New block list name").fill("Complaints")
        page.get_by_role("button", name="Create block list").click()
        expect(page.get_by_role("heading", name="Block list “Complaints”")).to_be_visible()
        page.get_by_label("Add numbers to “Complaints”").fill("+91 98123 11111\n12x")
        page.get_by_role("button", name="Add numbers").click()
        expect(page.locator("#flash")).to_contain_text("1 added, 0 already there; not numbers: 12x")
        page.get_by_role("button", name="Remove +919812311111").click()
        expect(page.get_by_text("No numbers on this list yet.")).to_be_visible()
        # The opt-out list: a number opted out, then back in after a confirmation.
        page.get_by_label("Number", exact=True).fill("+91 98123 22222")
        page.get_by_label("Note", exact=True).fill("asked by phone")
        page.get_by_role("button", name="Opt out", exact=True).click()
        expect(page.get_by_role("cell", name="asked by phone")).to_be_visible()
        page.get_by_role("button", name="Opt +919812322222 back in").click()
        page.get_by_role("dialog").get_by_role("button", name="Remove").click()
        expect(page.get_by_text("Nobody has opted out.")).to_be_visible()
        screen(page, "desk", "block-lists-opt-outs")
        page.get_by_role("link", name="Settings").click()
        expect(page.get_by_label("Time zone (IANA, e.g. Asia/Kolkata)")).to_be_visible()
        screen(page, "desk", "settings")

        # The keyboard alone: to the row's actions menu, open it, launch.
        c = ready_campaign(base_url, "keys", "106540352242929")
        page.goto(base_url + "/console#/campaigns")
        expect(page.get_by_role("row", name=re.compile("Keyboard run"))).to_be_visible()
        label = "Actions for Keyboard run"
        for _ in range(60):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.getAttribute('aria-label')") == label:
                break
        else:
            pytest.fail("Tab never reached the actions menu")
        page.keyboard.press("Enter")
        menu = page.locator("details.menu[open]")
        expect(menu).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("details.menu[open]")).to_have_count(0)
        expect(page.locator(":focus")).to_have_attribute("aria-label", label)
        page.keyboard.press("Enter")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.dataset.action") == "launch":
                break
        else:
            pytest.fail("Tab never reached Launch")
        page.keyboard.press("Enter")
        expect(page.get_by_role("row", name=re.compile("Keyboard run")).locator(".badge.status-RUNNING")).to_be_visible()
        assert api(base_url, "keys", "GET", f"/campaigns/{c['id']}")["status"] == "RUNNING"
        assert not errors, errors
    finally:
        context.close()


def test_r11_2_sign_in_with_the_issuer_by_authorization_code_and_pkce(browser, base_url):
    """In AWS the console signs in at the JWT authorizer's issuer: the identity provider
    is played here by Playwright's request routing (config.json names it), and every API
    call must then carry the access token as its bearer."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlencode, urlparse

    idp = "https://idp.example.test"
    seen = {}
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)

    def config(route):
        route.fulfill(json={"auth": "oidc", "issuer": idp, "client_id": "console-client", "scope": "openid tenants"})

    def discovery(route):
        route.fulfill(json={"issuer": idp, "authorization_endpoint": idp + "/authorize", "token_endpoint": idp + "/token"})

    def authorize(route):
        q = parse_qs(urlparse(route.request.url).query)
        seen["authorize"] = q
        back = q["redirect_uri"][0] + "?" + urlencode({"code": "the-code", "state": q["state"][0]})
        route.fulfill(status=302, headers={"location": back})

    def token(route):
        form = parse_qs(route.request.post_data)
        seen["token"] = form
        verifier = form["code_verifier"][0]
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        ok = (challenge == seen["authorize"]["code_challenge"][0] and form["code"] == ["the-code"]
              and form["grant_type"] == ["authorization_code"] and form["client_id"] == ["console-client"])
        if ok:
            route.fulfill(json={"access_token": "tok-123", "token_type": "Bearer", "expires_in": 3600})
        else:
            route.fulfill(status=400, json={"error": "invalid_grant"})

    page.route("**/console/config.json", config)
    page.route(idp + "/.well-known/openid-configuration", discovery)
    page.route(idp + "/authorize*", authorize)
    page.route(idp + "/token", token)
    bearers = []
    page.on("request", lambda r: bearers.append((r.url, r.headers.get("authorization")))
            if r.url.startswith(base_url) and "/console" not in r.url else None)
    try:
        page.goto(base_url + "/console#/settings")
        expect(page.get_by_role("heading", name="Settings")).to_be_visible()
        # Back where it started, the code gone from the address.
        assert page.url == base_url + "/console#/settings", page.url
        a = seen["authorize"]
        assert a["response_type"] == ["code"] and a["code_challenge_method"] == ["S256"]
        assert a["client_id"] == ["console-client"] and a["scope"] == ["openid tenants"]
        assert a["redirect_uri"] == [base_url + "/console"]
        assert bearers and all(b == "Bearer tok-123" for _, b in bearers), bearers
        assert page.evaluate("() => localStorage.getItem('tenant')") is None
    finally:
        context.close()

    # The provider refuses (error=): the console says so once and offers to sign in
    # again, instead of sending the browser back and forth.
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)
    visits = []

    def refuse(route):
        visits.append(route.request.url)
        q = parse_qs(urlparse(route.request.url).query)
        back = q["redirect_uri"][0] + "?" + urlencode({"error": "access_denied", "error_description": "not a user of this app", "state": q["state"][0]})
        route.fulfill(status=302, headers={"location": back})

    page.route("**/console/config.json", config)
    page.route(idp + "/.well-known/openid-configuration", discovery)
    page.route(idp + "/authorize*", refuse)
    try:
        page.goto(base_url + "/console#/campaigns")
        expect(page.get_by_role("alert")).to_contain_text("the sign-in provider refused: not a user of this app")
        expect(page.get_by_role("button", name="Sign in again")).to_be_visible()
        page.wait_for_timeout(500)
        assert len(visits) == 1, visits
        assert "error=" not in page.url
    finally:
        context.close()


def test_r11_1_a_file_over_a_megabyte_goes_through_the_upload_and_is_followed(browser, base_url, tmp_path):
    """Over the inline limit (1 MB) the console asks POST /imports for an upload URL, puts
    the file there and follows the import until it finishes."""
    rows = ["phone,name,note"] + [
        f"+9198700{i:05d},Person {i},{'x' * 40}" for i in range(20000)
    ] + ["12345,Bad,"]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    assert path.stat().st_size > 1024 * 1024
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60000)
    seen = []
    page.on("request", lambda r: seen.append((r.method, r.url)))
    try:
        page.goto(base_url + "/console#/audience")
        switch_tenant(page, "bulk")
        page.get_by_label(re.compile("^CSV file")).set_input_files(str(path))
        page.get_by_role("button", name="Import", exact=True).click()
        report = page.locator("[data-import]")
        expect(report).to_contain_text("Import completed: 20,001 rows, 20,000 imported, 1 invalid.", timeout=90000)
        expect(report.get_by_role("cell", name="20002", exact=True)).to_be_visible()
        assert ("POST", base_url + "/imports") in seen
        assert any(m == "PUT" and "/local/objects/" in u for m, u in seen), seen
        assert not any(u.startswith(base_url + "/contacts/import") for _, u in seen)
    finally:
        context.close()


def test_r11_1_a_page_the_api_refuses_shows_the_api_message(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(base_url + "/console#/campaigns/cmp_nope")
        expect(page.get_by_role("alert")).to_contain_text("campaign 'cmp_nope' not found")
        expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
        page.goto(base_url + "/console#/campaigns/cmp_nope/contacts/919812345678")
        expect(page.get_by_role("alert")).to_contain_text("not found")
        screen(page, "desk", "error")
    finally:
        context.close()


def test_r12_an_sms_campaign_from_the_console(browser, base_url):
    """Issue 16: an SMS campaign set up in the form (channel, SMS account, message with a
    variable and its parts cap, a list), launched against the simulator's Twilio, whose
    signed status callbacks come back; SMS shows no read rate, the grid badges it SMS."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_default_timeout(15000)
    tenant = "sms"
    try:
        phones = [f"+1415555{i:04d}" for i in range(3)]
        api(base_url, tenant, "POST", "/contacts", [{"phone": p, "name": f"Sam {i}"} for i, p in enumerate(phones)])
        lst = api(base_url, tenant, "POST", "/lists", {"name": "Texters"})
        api(base_url, tenant, "POST", f"/lists/{lst['id']}/members", {"phones": [p.lstrip("+") for p in phones]})
        page.goto(base_url + "/console#/accounts")
        switch_tenant(page, tenant)
        page.get_by_label("Name", exact=True).first.fill("Texts")
        page.get_by_label("Provider", exact=True).select_option("twilio")
        page.get_by_label("Sender id (Meta phone_number_id)").fill("AC00000000000000000000000000000001:+15005550006")
        page.get_by_label("Token reference (never the token itself)").fill(f"secretsmanager:campaigns/{tenant}/twilio-token")
        page.get_by_role("button", name="Add account").click()
        expect(page.get_by_role("cell", name="twilio")).to_be_visible()

        page.get_by_role("link", name="Campaigns", exact=True).click()
        page.get_by_role("link", name="New campaign").click()
        page.get_by_label("Name", exact=True).fill("Texts for Sam")
        page.get_by_label("Channel", exact=True).select_option("sms")
        # Only SMS accounts are offered for an SMS campaign, and no template.
        expect(page.get_by_label("Template (approved only)")).to_be_hidden()
        page.get_by_label("Account", exact=True).select_option(label="Texts (twilio)")
        page.get_by_label("SMS message").fill("Hi {{1}}, your table is ready")
        expect(page.get_by_label("Template preview")).to_contain_text("Hi Asha, your table is ready")
        # A cap the message does not fit: the API's 422 on the message.
        page.get_by_label("At most this many SMS parts (1-10)").fill("1")
        page.get_by_label("SMS message").fill("Hi {{1}}, " + "x" * 170)
        page.get_by_role("checkbox", name="Texters").check()
        page.get_by_role("button", name="Create campaign").click()
        error = page.locator('[data-field="message"] .error')
        expect(error).to_contain_text("takes 2 parts")
        page.get_by_label("SMS message").fill("Hi {{1}}, your table is ready")
        screen(page, "desk", "sms-campaign-form")
        page.get_by_role("button", name="Create campaign").click()
        expect(page.get_by_role("heading", name="Texts for Sam")).to_be_visible()
        expect(page.locator(".badge.status-READY")).to_be_visible()
        page.get_by_role("button", name="Launch").click()
        expect(page.locator(".badge.status-RUNNING")).to_be_visible()
        page.wait_for_function(
            "() => Number(document.querySelector('[data-stat=delivered]').textContent) === 3", timeout=30000
        )
        expect(page.locator('[data-stat="no-reads"]')).to_contain_text("SMS reports no reads")
        expect(page.locator('[data-stat="read"]')).to_have_count(0)
        screen(page, "desk", "sms-campaign-detail")
        page.get_by_role("link", name="← Campaigns").click()
        row = page.get_by_role("row", name=re.compile("Texts for Sam"))
        expect(row.locator(".badge.channel-sms")).to_have_text("SMS")
        assert not errors, errors
    finally:
        context.close()
