"""The web UI in a real headless Chromium against a real master with real slaves: force a
build from its form, watch its log stream live, stop a build, act on a slave as a logged-in
user (and be refused as an anonymous one), and see hostile text rendered as text.

Each test also saves a screenshot of its page under docs/screenshots/.
"""

import json
import re

from browserkit import login, screenshot
from playwright.sync_api import expect

from fixtures.daemons import wait_for

LIVE_BUILD_DEADLINE_S = 40


def build_of_request(farm, brid: int) -> int:
    """The id of the first build of a request, once it started."""
    return wait_for(lambda: (farm.get(f"/api/v1/buildrequests/{brid}")["buildids"] or [None])[0],
                    f"build request {brid} to start a build")


def test_overview_shows_builders_queue_and_slaves_and_login_page(farm, page):
    page.goto(farm.url + "/")
    assert page.title().endswith("release farm")
    builders = page.locator("#builders").inner_text()
    assert all(name in builders for name in ("lines", "sleeper", "escaping", "typed"))
    slaves = page.locator("#slaves").inner_text()
    assert "bs1" in slaves and "spare" in slaves and "ago" in slaves
    assert page.locator("#pending").inner_text().count("The queue is empty.") == 1
    page.click("#login-link")
    page.wait_for_selector("#login-form")
    screenshot(page, "login.png")
    page.fill("input[name=username]", "oncall")
    page.fill("input[name=password]", "wrong")
    page.click("#login-form button[type=submit]")
    assert page.locator("#login-error").inner_text() == "Wrong user name or password."


def test_force_from_the_form_then_watch_the_log_lines_arrive_live(farm, page):
    login(page, farm.url, "oncall", "s3cret")
    page.goto(farm.url + "/builders/lines")
    page.click("#force-form button[type=submit]")
    page.wait_for_selector("#forced")
    brid = int(re.search(r"forced=(\d+)", page.url).group(1))
    buildid = build_of_request(farm, brid)

    page.goto(f"{farm.url}/builds/{buildid}")
    assert page.get_attribute("#build", "data-running") == "true"
    # Record, in the page, every change of the log's text and when it happened.
    page.evaluate("""() => {
        window.seen = [];
        window.notReloaded = true;
        const record = () => {
            const text = [...document.querySelectorAll('pre.logtext')].map(p => p.textContent).join('');
            window.seen.push([Date.now(), (text.match(/^line \\d$/gm) || []).length]);
        };
        record();
        new MutationObserver(record).observe(document.getElementById('steps'),
                                             {childList: true, subtree: true, characterData: true});
    }""")
    page.wait_for_selector("#build-result .result-success", timeout=LIVE_BUILD_DEADLINE_S * 1000)
    seen = page.evaluate("window.seen")
    assert page.evaluate("window.notReloaded") is True  # the lines came through the event stream
    counts = [count for _, count in seen]
    assert counts[0] < 8, f"the build had printed everything before its page opened: {seen}"
    assert counts[-1] == 8, seen
    growth = [(when, count) for (when, count), (_, before) in zip(seen[1:], seen, strict=False)
              if count > before]
    # One line a second: the page grew several times, over seconds, not all at once.
    assert len(growth) >= 3 and growth[-1][0] - growth[0][0] >= 1500, seen
    assert page.locator("#stop-form").count() == 0
    screenshot(page, "build.png")


def test_force_form_is_validated_on_the_server(farm, page):
    login(page, farm.url, "oncall", "s3cret")
    page.goto(farm.url + "/builders/typed")
    page.fill("input[name=branch]", "Not A Branch!")
    page.click("#force-form button[type=submit]")
    error = page.wait_for_selector(".field-error[data-field=branch]")
    assert "does not match" in error.inner_text()
    assert page.input_value("input[name=branch]") == "Not A Branch!"  # the form keeps what was typed
    page.fill("input[name=branch]", "main")
    page.fill("input[name=jobs]", "many")
    page.click("#force-form button[type=submit]")
    assert "must be an integer" in page.wait_for_selector(".field-error[data-field=jobs]").inner_text()
    page.fill("input[name=jobs]", "8")
    page.check("input[name=clobber]")
    page.select_option("select[name=flavour]", "debug")
    page.click("#force-form button[type=submit]")
    page.wait_for_selector("#forced")
    brid = int(re.search(r"forced=(\d+)", page.url).group(1))
    request = farm.get(f"/api/v1/buildrequests/{brid}")
    assert {k: request["properties"][k] for k in ("branch", "jobs", "clobber", "flavour", "owner")} == {
        "branch": "main", "jobs": 8, "clobber": True, "flavour": "debug", "owner": "oncall"}
    farm.wait_request_complete(brid)
    page.goto(farm.url + "/builders/typed")
    page.wait_for_selector("table.builds .result-success")
    screenshot(page, "builder.png")


def test_stop_a_running_build_and_cancel_a_pending_request_from_their_pages(farm, page):
    running = farm.force("sleeper")
    buildid = build_of_request(farm, running)
    waiting = farm.force("sleeper")  # its only slave is busy with the first: it waits
    page.goto(farm.url + "/")
    assert "sleeper" in page.locator("#pending").inner_text()
    assert page.locator("#builders tr", has_text="sleeper").locator(".result-running").count() == 1
    assert "busy" in page.locator("#slaves tr", has_text="bs2").inner_text()
    screenshot(page, "overview.png")

    login(page, farm.url, "oncall", "s3cret")
    page.goto(farm.url + "/builders/sleeper")
    page.locator("#pending tr", has_text=str(waiting)).locator("button").click()
    page.wait_for_selector("#pending .empty")
    assert farm.get(f"/api/v1/buildrequests/{waiting}")["result"] == "cancelled"

    page.goto(f"{farm.url}/builds/{buildid}")
    page.click("#stop-form button[type=submit]")
    page.wait_for_selector("#build-result .result-cancelled", timeout=LIVE_BUILD_DEADLINE_S * 1000)
    assert farm.wait_request_complete(running)["result"] == "cancelled"


def test_anonymous_cannot_act_on_a_slave_and_a_logged_in_user_disables_it(farm, page):
    page.goto(farm.url + "/slaves/spare")
    button = page.locator("#action-disable button[type=submit]")
    assert button.is_disabled() and button.get_attribute("title") == "log in to act"
    # Even a hand-made POST is refused without a session.
    token = page.input_value("#action-disable input[name=csrf_token]")
    refused = page.request.post(f"{farm.url}/slaves/spare/actions/disable",
                                form={"csrf_token": token, "reason": "anonymous"}, max_redirects=0)
    assert refused.status == 401 and "anonymous users may look, not act" in refused.text()

    login(page, farm.url, "oncall", "s3cret")
    page.goto(farm.url + "/slaves/spare")
    page.fill("#action-disable input[name=reason]", "disk full")
    page.click("#action-disable button[type=submit]")
    requested = page.wait_for_selector("#requested").inner_text()
    requestid = re.search(r"\d+", requested).group(0)

    def finished():
        page.reload()
        state = page.locator(f"#action-results tr[data-requestid='{requestid}'] .state").inner_text()
        return state if state in ("success", "failure") else None

    assert wait_for(finished, "the disable action to finish") == "success"
    assert page.locator("#slave-state").inner_text() == "disabled"
    assert "disk full" in page.locator(".summary").inner_text()
    screenshot(page, "slave.png")
    page.goto(farm.url + "/")
    assert "disabled" in page.locator("#slaves tr", has_text="spare").inner_text()


def test_script_in_a_property_or_a_log_line_renders_as_text(farm, page):
    hostile = "<script>window.pwned = 2</script><img src=x onerror='window.pwned = 3'>"
    status, body = farm.request("POST", "/api/v1/builders/escaping/force",
                                {"properties": {"note": hostile}, "reason": hostile})
    assert status == 200, body
    brid = json.loads(body)["buildrequestid"]
    buildid = farm.wait_request_complete(brid)["buildids"][0]
    page.goto(f"{farm.url}/builds/{buildid}")
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert "<script>window.pwned = 1</script><b>bold</b>" in page.locator("pre.logtext").first.inner_text()
    assert page.locator("pre.logtext b, pre.logtext script").count() == 0
    assert hostile in page.locator("#properties").inner_text()
    assert page.locator("#properties img").count() == 0


def test_a_long_log_shows_its_tail_loads_earlier_lines_on_demand_and_downloads_whole(farm, page):
    buildid = farm.wait_request_complete(farm.force("long"))["buildids"][0]
    page.goto(f"{farm.url}/builds/{buildid}")
    log = page.locator("details.log").first
    shown = log.locator("pre.logtext").inner_text()
    assert "\n3000\n" in shown and "\n2000\n" not in shown
    button = log.locator("button.earlier")
    before = int(button.get_attribute("data-first"))
    button.click()
    # Done when no button still says the old first line: moved back, or gone once line 0 is shown.
    expect(log.locator(f"button.earlier[data-first='{before}']")).to_have_count(0)
    grown = log.locator("pre.logtext").inner_text()
    assert grown.endswith(shown) and grown.count("\n") - shown.count("\n") == min(500, before)
    with page.expect_download() as download:
        log.locator("summary a[download]").click()
    with open(download.value.path()) as f:
        whole = f.read()
    assert all(f"\n{n}\n" in whole for n in (1, 1500, 2999)) and whole.count("\n") > 3000


def test_the_page_csp_refuses_eval_in_the_page_s_own_code(farm, page):
    """Why the browser tests wait with locators and never with ``page.wait_for_function``: playwright
    polls that predicate with ``eval`` from the page's own timers, which this CSP refuses."""
    page.goto(farm.url + "/")
    outcome = page.evaluate("""() => new Promise(resolve => setTimeout(() => {
        try { eval('1'); resolve('allowed'); } catch (e) { resolve(e.name); }
    }, 0))""")
    assert outcome == "EvalError"
