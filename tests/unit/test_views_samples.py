"""The fleet and the queue over time: ``db.samples`` on both databases (minutes kept a day,
rolled up per hour and kept eight days, so the table stays bounded) and the master's
``Sampler`` recording slaves by state, the queue and SlaveAPI outcomes each minute of its
clock."""

import pytest_twisted
from test_db_tasks import _completed, _task

from buildfarm.master import samples as sampler
from buildfarm.master.db.samples import HOUR, HOURS_KEPT_S, MINUTE, MINUTES_KEPT_S
from buildfarm.master.fleet import ActionState
from fixtures.memorymaster import eventually, memory_master_fixture

T0 = 20_000 * 86400.0  # 00:00 UTC


@pytest_twisted.ensureDeferred
async def test_samples_read_back_by_prefix_oldest_first(db):
    await db.samples.add(T0, {"slaves.idle": 2, "slaves.busy": 1, "queue.pending": 5})
    await db.samples.add(T0 + MINUTE, {"slaves.idle": 1, "slaves.busy": 2, "queue.pending": 3})
    found = await db.samples.series("slaves.", T0)
    assert found == {"slaves.busy": [(T0, 1.0), (T0 + MINUTE, 2.0)],
                     "slaves.idle": [(T0, 2.0), (T0 + MINUTE, 1.0)]}
    assert await db.samples.series("queue.", T0 + 30) == {"queue.pending": [(T0 + MINUTE, 3.0)]}
    assert await db.samples.series("slaves_", T0) == {}  # a prefix, not a LIKE pattern


@pytest_twisted.ensureDeferred
async def test_a_finished_hour_rolls_up_averaged_or_summed_and_old_rows_go(db):
    counted = frozenset({"slaveapi.success"})
    for minute in range(60):
        await db.samples.add(T0 + minute * MINUTE, {"queue.pending": minute % 2 * 10, "slaveapi.success": 1},
                             counted)
    await db.samples.add(T0 + HOUR, {"queue.pending": 0, "slaveapi.success": 0}, counted)
    assert await db.samples.series("queue.", T0, HOUR) == {"queue.pending": [(T0, 5.0)]}
    assert await db.samples.series("slaveapi.", T0, HOUR) == {"slaveapi.success": [(T0, 60.0)]}
    # a day later the minutes are gone, the hour stays; eight days later it is gone too
    await db.samples.add(T0 + HOUR + MINUTES_KEPT_S + MINUTE, {"queue.pending": 1}, counted)
    later = T0 + HOUR + MINUTES_KEPT_S + MINUTE
    assert await db.samples.series("queue.", T0, MINUTE) == {"queue.pending": [(later, 1.0)]}
    assert (await db.samples.series("queue.", T0, HOUR))["queue.pending"][0] == (T0, 5.0)
    await db.samples.add(T0 + HOURS_KEPT_S + 2 * HOUR, {}, counted)
    assert (await db.samples.series("queue.", 0, HOUR))["queue.pending"][0][0] > T0


master = memory_master_fixture(now=T0 + 30)


@pytest_twisted.ensureDeferred
async def test_the_master_samples_slaves_queue_and_actions_each_minute(master):
    db = master.db
    await eventually(lambda: has_samples(db, 1), "the sample at start-up")
    first = await db.samples.series("slaves.", 0)
    assert first["slaves.never_seen"] == [(T0 + 30, 2.0)]  # bs1 and bs2 never attached: at start-up
    builderid = master.botmaster.builders["linux"].builderid
    await db.buildrequests.add(builderid, "waiting", {}, T0 - 100)
    requestid = await db.slaveapi.add_result("bs1", "reboot", {}, "admin", "127.0.0.1", None, T0 + 40)
    await db.slaveapi.finish_result(requestid, ActionState.SUCCESS, "rebooted", T0 + 50)
    await db.tasks.create(_task(0x2001, created_at=T0 + 40))
    await _completed(db, 0x2002, T0 + 60, created_at=T0 + 40)

    master.reactor.advance(sampler.SAMPLE_INTERVAL_S)  # the next minute's sample, at T0 + 90
    await eventually(lambda: has_samples(db, 2), "the second sample")

    found = await db.samples.series("", 0)
    assert found["queue.pending"] == [(T0 + 30, 0.0), (T0 + 90, 1.0)]
    assert found["queue.oldest_wait_s"][-1] == (T0 + 90, 190.0)
    assert found["slaveapi.success"] == [(T0 + 30, 0.0), (T0 + 90, 1.0)]
    assert found["slaveapi.failure"][-1] == (T0 + 90, 0.0)
    assert found["slaves.never_seen"][-1] == (T0 + 90, 2.0) and found["slaves.idle"][-1] == (T0 + 90, 0.0)
    assert found["tasks.pending"] == [(T0 + 30, 0.0), (T0 + 90, 1.0)]
    assert found["tasks.completed"] == [(T0 + 30, 0.0), (T0 + 90, 1.0)]
    assert found["tasks.running"][-1] == found["tasks.failed"][-1] == (T0 + 90, 0.0)


def has_samples(db, count: int):
    async def check():
        return len((await db.samples.series("queue.pending", 0)).get("queue.pending", [])) >= count

    return check()


@pytest_twisted.ensureDeferred
async def test_the_overview_charts_the_samples_and_the_json_twin_has_them(master):
    import json

    from fixtures.memoryhttp import render

    db = master.db
    await eventually(lambda: has_samples(db, 1), "the sample at start-up")
    await db.samples.add(T0 + 10, {"queue.pending": 4, "queue.oldest_wait_s": 120, "slaves.idle": 1,
                                    "slaveapi.success": 2, "slaveapi.failure": 1})
    site = master.www.make_site().resource
    html = (await render(site, "GET", "/")).body.decode()
    pending = html.split('id="chart-pending"', 1)[1].split("</svg>", 1)[0]
    assert 'data-points="2"' in pending and "now 0.0" in pending  # 4 at T0 + 10, 0 at start-up (T0 + 30)
    path = pending.split(' d="M', 1)[1].split('"', 1)[0]
    (_, y_then), (_, y_now) = [map(float, point.split(",")) for point in path.split(" L")]
    assert y_then < y_now  # 4 drawn above 0
    slaves = html.split('id="chart-slaves"', 1)[1].split("</svg>", 1)[0]
    assert 'data-series="slaves.never_seen"' in slaves and 'class="line line-dash"' in slaves
    actions = html.split('id="chart-actions"', 1)[1].split("</svg>", 1)[0]
    assert "2 success" in actions and "1 failure" in actions and 'fill="url(#wf-failure)"' in actions
    body = json.loads((await render(site, "GET", "/api/v1/views/fleet")).body)
    assert body["series"]["queue.pending"] == [{"at": T0 + 10, "value": 4.0}, {"at": T0 + 30, "value": 0.0}]
    today = body["actions_per_day"][-1]
    assert (today["day"], today["success"], today["failure"]) == (T0, 2.0, 1.0)


@pytest_twisted.ensureDeferred
async def test_tasks_by_state_counts_those_waiting_or_running_now_and_those_that_ended_in_the_window(db):
    await db.tasks.create(_task(0x1001, created_at=T0))  # pending
    await db.tasks.create(_task(0x1002, created_at=T0))
    await db.tasks.start_run(0x1002, "s1", T0 + 5)  # running
    await _completed(db, 0x1003, T0 + 10, created_at=T0)  # completed, exit 0
    await _completed(db, 0x1004, T0 + 20, exit_code=1, created_at=T0)  # failed: a non-zero exit
    await _completed(db, 0x1005, T0 + 30, state="TIMED_OUT", created_at=T0)  # failed
    await db.tasks.create(_task(0x1006, created_at=T0))
    await db.tasks.end_pending(0x1006, "EXPIRED", T0 + 40)  # failed, without a try
    await _completed(db, 0x1007, T0 - 10, created_at=T0 - 100)  # ended before the window
    found = await db.samples.tasks_by_state(T0, T0 + MINUTE)
    assert found == {"pending": 1, "running": 1, "completed": 1, "failed": 3}
    assert await db.samples.tasks_by_state(T0 + MINUTE, T0 + 2 * MINUTE) == {
        "pending": 1, "running": 1, "completed": 0, "failed": 0}
