"""The task pages in a real headless Chromium against a real master with a real slave: a task
triggered through the Swarming API runs on the slave, and its page shows the output grow live
(the page's event stream, no reload) until the task ends; the list and the bots page show it;
a logged-in user kills a running task with the page's button (an anonymous one cannot).

Saves docs/screenshots/task.png, tasks.png and bots.png."""

import json

import pytest
from browserkit import login, screenshot

from fixtures.daemons import TEST_PASSWORD, TEST_USER, Fleet, wait_for

LIVE_TASK_DEADLINE_S = 40
TASKS_CFG = """\
from buildfarm.master.plugins import slaves, util

c = BuildmasterConfig = {{}}
c['title'] = 'task farm'
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci', 'gpu': 'none'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port},
             'anonymous_scopes': ['builds:read', 'slaves:read', 'tasks:read', 'bots:read']}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['builders'] = []
"""
# One line a second for 8 s: long enough that a loaded machine still opens the page while it runs.
COMMAND = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo \"line $i <b>\"; sleep 1; done"]


@pytest.fixture(scope="module")
def task_farm(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("task-pages")))
    try:
        master = fleet.master(config=lambda pb_port, www_port: TASKS_CFG.format(pb_port=pb_port,
                                                                                  www_port=www_port))
        fleet.slave(master, "bs1")
        master.wait_attached("bs1")
        yield master
    finally:
        fleet.stop_all()


def trigger(master, command: list[str]) -> str:
    body = {"name": "lines <script>", "priority": 100, "tags": ["purpose:browser"],
            "task_slices": [{"expiration_secs": 600, "properties": {
                "command": command, "dimensions": [{"key": "pool", "value": "ci"}],
                "execution_timeout_secs": 120, "io_timeout_secs": 60, "grace_period_secs": 5}}]}
    status, answer = master.request("POST", "/_ah/api/swarming/v1/tasks/new", body)
    assert status == 200, answer
    return json.loads(answer)["task_id"]


def task_state(master, task_id: str) -> str:
    return master.get(f"/_ah/api/swarming/v1/task/{task_id}/result")["state"]


def test_a_running_tasks_page_shows_its_output_grow_live_until_it_ends(task_farm, page):
    task_id = trigger(task_farm, COMMAND)
    wait_for(lambda: task_state(task_farm, task_id) == "RUNNING", f"task {task_id} to start",
             LIVE_TASK_DEADLINE_S)

    page.goto(f"{task_farm.url}/tasks/{task_id}")
    assert page.get_attribute("#task", "data-live") == "true"
    page.evaluate("""() => {
        window.seen = [];
        window.notReloaded = true;
        const record = () => {
            const text = document.getElementById('task-output').textContent;
            window.seen.push([Date.now(), (text.match(/^line \\d <b>$/gm) || []).length]);
        };
        record();
        new MutationObserver(record).observe(document.getElementById('task-output'),
                                             {childList: true, subtree: true, characterData: true});
    }""")
    page.wait_for_selector("#task-state.result-success", timeout=LIVE_TASK_DEADLINE_S * 1000)
    seen = page.evaluate("window.seen")
    assert page.evaluate("window.notReloaded") is True  # the output came through the event stream
    counts = [count for _, count in seen]
    assert counts[0] < 8, f"the task had printed everything before its page opened: {seen}"
    assert counts[-1] == 8, seen
    growth = [(when, count) for (when, count), (_, before) in zip(seen[1:], seen, strict=False)
              if count > before]
    assert len(growth) >= 3 and growth[-1][0] - growth[0][0] >= 1500, seen
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("#task-output b").count() == 0  # "<b>" came as text
    assert page.locator("#cancel-form").count() == 0
    assert page.get_attribute("#task", "data-live") == "false"
    assert page.locator("#tries tr.shown .result").inner_text() == "COMPLETED"
    screenshot(page, "task.png")

    page.click("#tasks-link")
    page.wait_for_selector(f"tr[data-task-id='{task_id}']")
    assert "lines <script>" in page.locator(f"tr[data-task-id='{task_id}']").inner_text()
    screenshot(page, "tasks.png")

    page.click("#bots-link")
    page.wait_for_selector("tr[data-bot='bs1']")
    assert "idle" in page.locator("tr[data-bot='bs1']").first.inner_text()
    screenshot(page, "bots.png")


def test_a_logged_in_user_kills_a_running_task_from_its_page_and_anonymous_cannot(task_farm, page):
    task_id = trigger(task_farm, ["sleep", "100"])
    wait_for(lambda: task_state(task_farm, task_id) == "RUNNING", f"task {task_id} to start",
             LIVE_TASK_DEADLINE_S)
    page.goto(f"{task_farm.url}/tasks/{task_id}")
    assert page.locator("#cancel-form button").is_disabled()  # anonymous: may look, not act

    login(page, task_farm.url, TEST_USER, TEST_PASSWORD)
    page.goto(f"{task_farm.url}/tasks/{task_id}")
    assert page.locator("#cancel-form button").inner_text() == "Kill"
    page.click("#cancel-form button")
    page.wait_for_selector("#canceled")
    wait_for(lambda: task_state(task_farm, task_id) == "KILLED", f"task {task_id} to be killed",
             LIVE_TASK_DEADLINE_S)
    page.reload()
    assert page.locator("#task-state").inner_text() == "KILLED"
    assert page.locator("#cancel-form").count() == 0
