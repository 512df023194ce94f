"""Browser tests: a real master with real slaves (``fixtures.daemons.Fleet``) driven by a real
headless Chromium (Debian's /usr/bin/chromium through playwright's sync API).

One master (and its slaves) serves the whole session, as starting daemons is the slow part;
each test gets a fresh browser context (no cookies carried between tests).
"""

import pytest
from browserkit import BROWSER_CFG, CHROMIUM, CHROMIUM_ARGS, PAGE_TIMEOUT_MS
from playwright.sync_api import sync_playwright

from fixtures.daemons import Fleet


@pytest.fixture(scope="session")
def farm(tmp_path_factory):
    """A master with the builders above and the slaves bs1, bs2 and spare, all attached."""
    fleet = Fleet(str(tmp_path_factory.mktemp("farm")))
    try:
        master = fleet.master(config=lambda pb_port, www_port: BROWSER_CFG.format(
            pb_port=pb_port, www_port=www_port))
        for name in ("bs1", "bs2", "spare"):
            fleet.slave(master, name)
        for name in ("bs1", "bs2", "spare"):
            master.wait_attached(name)
        yield master
    finally:
        fleet.stop_all()


@pytest.fixture(scope="session")
def browser():
    """Chromium, headless (playwright gives it a new temporary profile directory)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                              headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    """A new page in a new context: no cookies of earlier tests."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()
