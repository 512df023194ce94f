"""Wake-ups through the broker (master/cluster/wakeups.py with
``c['multiMasterSettings']['wakeups']``): a master woken by the broker looks at its queue when
its bus hears a ``request-submitted`` of another master (which the consumer brought from the
broker), not for its own; which masters are woken that way; and checkconfig's word on the
setting."""

import dataclasses
from types import SimpleNamespace

import pytest

from buildfarm.master.cluster.settings import MultiMasterSettings, validate_multimaster_config
from buildfarm.master.cluster.wakeups import RequestWakeups, listens_for_wakeups, woken_by_broker
from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.mq import events
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.settings import MQSettings
from tests.fixtures.memorymaster import MASTER_CFG

SQLITE = "sqlite:///state.sqlite"
POSTGRESQL = "postgresql://u@h/db"
AMQP = MQSettings("amqp", "amqp://u:p@127.0.0.1:5672/")
MASTERID, OTHER = 1, 2


def config(db_url=SQLITE, mq=AMQP, wakeups="auto", multi=True):
    return SimpleNamespace(db_url=db_url, mq=mq, multi_master=multi,
                           multi_master_settings=MultiMasterSettings(wakeups=wakeups))


class Botmaster:
    def __init__(self):
        self.looked = 0

    def maybe_start_builds(self):
        self.looked += 1


def fake_master(cfg):
    return SimpleNamespace(config=cfg, masterid=MASTERID, mq=EventBus(origin=lambda: MASTERID),
                           botmaster=Botmaster(), basedir="/srv", reactor=None)


def submitted(bus, origin: int):
    message = events.request_submitted(bus, "linux", 3, 10, 5, "force", "because", 0, 1.0)
    return dataclasses.replace(message, origin=origin)


@pytest.mark.parametrize(("cfg", "broker", "listen"), [
    (config(), True, False),  # auto, SQLite: the broker
    (config(POSTGRESQL), False, True),  # auto, PostgreSQL: LISTEN/NOTIFY
    (config(POSTGRESQL, wakeups="broker"), True, False),
    (config(POSTGRESQL, wakeups="postgresql"), False, True),
    (config(multi=False), False, False),
    (config(POSTGRESQL, mq=MQSettings(), wakeups="auto"), False, True),
])
def test_which_masters_are_woken_by_the_broker_and_which_listen(cfg, broker, listen):
    assert woken_by_broker(cfg) is broker
    assert listens_for_wakeups(cfg.db_url, cfg.multi_master, cfg.multi_master_settings.wakeups) is listen


def test_another_masters_request_wakes_the_botmaster_and_its_own_does_not():
    master = fake_master(config())
    wakeups = RequestWakeups(master)
    wakeups.startService()
    master.mq.deliver_remote(submitted(master.mq, OTHER))
    assert (master.botmaster.looked, wakeups.broker_woken) == (1, 1)
    master.mq.published([submitted(master.mq, MASTERID)])  # this master's own request
    assert master.botmaster.looked == 1
    wakeups.stopService()
    master.mq.deliver_remote(submitted(master.mq, OTHER))
    assert master.botmaster.looked == 1 and master.mq.subscriptions() == 0


def test_a_master_not_woken_by_the_broker_does_not_subscribe():
    master = fake_master(config(multi=False))
    wakeups = RequestWakeups(master)
    wakeups.startService()
    assert master.mq.subscriptions() == 0
    wakeups.reconfigService(config())  # turned on by a reconfig
    master.mq.deliver_remote(submitted(master.mq, OTHER))
    assert master.botmaster.looked == 1
    wakeups.reconfigService(config(multi=False))  # and off
    assert master.mq.subscriptions() == 0
    wakeups.stopService()


def test_the_setting_defaults_to_auto_and_refuses_other_values():
    assert validate_multimaster_config({})[0].wakeups == "auto"
    settings, problems = validate_multimaster_config({"multiMasterSettings": {"wakeups": "pigeons"}})
    assert settings.wakeups == "auto" and problems == [
        ("multiMasterSettings",
         "c['multiMasterSettings']['wakeups'] must be one of auto, postgresql, broker, not 'pigeons'")]


@pytest.mark.parametrize(("extra", "message"), [
    ("c['multiMasterSettings'] = {'wakeups': 'broker'}\n",
     "c['multiMasterSettings']['wakeups'] = 'broker' needs c['mq'] = {'type': 'amqp', ...}"),
    ("c['multiMasterSettings'] = {'wakeups': 'postgresql'}\nc['mq'] = {'type': 'amqp', 'url': 'amqp://h/'}\n",
     "c['multiMasterSettings']['wakeups'] = 'postgresql' needs a PostgreSQL db_url"),
])
def test_checkconfig_refuses_wakeups_the_configuration_cannot_give(tmp_path, extra, message):
    path = tmp_path / "master.cfg"
    path.write_text(MASTER_CFG + extra)
    with pytest.raises(ConfigErrors) as raised:
        load_config(str(path))
    assert any(message in str(error) for error in raised.value.errors), raised.value.errors
