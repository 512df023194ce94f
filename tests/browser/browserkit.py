"""What the browser and HTTP tests of the web UI share: the master's configuration, Chromium's
arguments, logging in, screenshots, and a plain urllib client that follows no redirects."""

import base64
import os
import urllib.error
import urllib.parse
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Where the tests save a screenshot of each page: docs/screenshots/ (the docs link them), or
# $BUILDFARM_SCREENSHOT_DIR to leave the checked-in ones alone.
SCREENSHOT_DIR = os.environ.get("BUILDFARM_SCREENSHOT_DIR") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "screenshots")
PAGE_TIMEOUT_MS = 20_000
HTTP_TIMEOUT_S = 10

BROWSER_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['title'] = 'release farm'
c['slaves'] = [slaves.BuildSlave(name, 'pass') for name in ('bs1', 'bs2', 'spare')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}

def shell(command):
    return util.BuildFactory([steps.ShellCommand(command=command)])

# 'lines' prints one line a second for 8 s: long enough that a loaded CI machine still opens
# its page while it runs.
c['builders'] = [
    util.BuilderConfig(name='lines', slavenames=['bs1'],
                       factory=shell('for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 1; done')),
    util.BuilderConfig(name='sleeper', slavenames=['bs2'], factory=shell(['sleep', '120'])),
    util.BuilderConfig(name='escaping', slavenames=['bs1'],
                       factory=shell(['echo', '<script>window.pwned = 1</script><b>bold</b>'])),
    util.BuilderConfig(name='typed', slavenames=['bs1'], factory=shell(['echo', 'typed'])),
    util.BuilderConfig(name='long', slavenames=['bs1'], factory=shell(['seq', '1', '3000'])),
]
c['schedulers'] = [
    schedulers.ForceScheduler(name='force', builderNames=['lines', 'sleeper', 'escaping', 'long']),
    schedulers.ForceScheduler(name='typed', builderNames=['typed'], properties=[
        util.StringParameter(name='branch', label='Branch', regex=r'[a-z]+$', required=True),
        util.IntParameter(name='jobs', label='Jobs', default=2),
        util.BooleanParameter(name='clobber', label='Clobber'),
        util.ChoiceStringParameter(name='flavour', label='Flavour', choices=['opt', 'debug']),
    ]),
]
c['users'] = [
    util.User('oncall', password='s3cret', scopes=['slaveapi:*', 'builds:*']),
    util.User('viewer', password='v1ew', scopes=['slaveapi:read']),
]
"""


def login(page, base_url: str, user: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector(f"header .who:text-is('{user}')")


def screenshot(page, name: str) -> None:
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    page.screenshot(path=os.path.join(SCREENSHOT_DIR, name), full_page=True)


def http(method: str, url: str, form: dict | None = None, headers: dict | None = None
         ) -> tuple[int, dict, str]:
    """One HTTP request without redirects followed: status, headers, body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    data = urllib.parse.urlencode(form, doseq=True).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def basic_auth(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
