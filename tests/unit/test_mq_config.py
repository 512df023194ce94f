"""c['mq'] validated into MQSettings (master/mq/settings.py) and checked by load_config, and
checkconfig's refusal of c['multiMaster'] without a way for the masters to wake each other."""

import pytest

from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.mq.settings import MQSettings, validate_mq_config

URL = "amqp://buildfarm:s3cret@broker.example:5672/ci"


def test_no_mq_section_is_the_in_process_bus():
    settings, problems = validate_mq_config({})
    assert problems == [] and settings == MQSettings("simple", None, "exchange/") and not settings.amqp


def test_an_amqp_section_is_taken():
    mq = {"type": "amqp", "url": URL, "exchange_prefix": "exchange/ci/"}
    settings, problems = validate_mq_config({"mq": mq})
    assert problems == [] and settings == MQSettings("amqp", URL, "exchange/ci/") and settings.amqp
    assert settings.safe_url() == "amqp://buildfarm:***@broker.example:5672/ci"


@pytest.mark.parametrize(("mq", "message"), [
    ([], "c['mq'] must be a dict"),
    ({"type": "kafka"}, "c['mq']['type'] must be one of simple, amqp, not 'kafka'"),
    ({"type": "amqp"}, "c['mq']['url'] is required with 'type': 'amqp'"),
    ({"type": "amqp", "url": "http://broker/"}, "c['mq']['url'] must be an amqp:// or amqps:// URL"),
    ({"type": "amqp", "url": "amqp:///"}, "c['mq']['url'] must be an amqp:// or amqps:// URL with a host"),
    ({"type": "amqp", "url": "amqp://u:pw@h/?heartbeat=soon"},
     "bad c['mq']['url'] 'amqp://u:***@h/?heartbeat=soon'"),
    ({"url": URL}, "c['mq']['url'] is only read with 'type': 'amqp'"),
    ({"type": "amqp", "url": URL, "exchange_prefix": "a b"}, "c['mq']['exchange_prefix'] must be"),
    ({"type": "amqp", "url": URL, "exchange_prefix": 3}, "c['mq']['exchange_prefix'] must be"),
    ({"type": "simple", "bogus": 1}, "unknown c['mq'] key 'bogus'"),
])
def test_a_bad_mq_section_is_refused_with_a_one_line_reason(mq, message):
    _, problems = validate_mq_config({"mq": mq})
    assert any(text.startswith(message) for _, text in problems), problems
    assert all("\n" not in text and "s3cret" not in text and ":pw@" not in text for _, text in problems)


def write(tmp_path, body: str) -> str:
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + body)
    return str(cfg)


def test_load_config_reads_c_mq_without_the_old_no_effect_warning(tmp_path):
    config = load_config(write(tmp_path, f"c['mq'] = {{'type': 'amqp', 'url': {URL!r}}}\n"))
    assert config.mq.url == URL
    assert not any("mq" in w for w in config.warnings)


def test_checkconfig_names_the_line_of_a_bad_mq(tmp_path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, "c['title'] = 'x'\nc['mq'] = {'type': 'amqp'}\n"))
    assert [(e.line, e.message) for e in caught.value.errors] == [
        (3, "c['mq']['url'] is required with 'type': 'amqp', like 'amqp://user:password@host:5672/'")]


def test_multimaster_without_amqp_or_postgresql_is_refused(tmp_path):
    with pytest.raises(ConfigErrors, match=r"c\['multiMaster'\] = True needs c\['mq'\]"):
        load_config(write(tmp_path, "c['multiMaster'] = True\n"))


@pytest.mark.parametrize("body", [
    f"c['multiMaster'] = True\nc['mq'] = {{'type': 'amqp', 'url': {URL!r}}}\n",
    "c['multiMaster'] = True\nc['db'] = {'db_url': 'postgresql+psycopg://u@127.0.0.1/bf'}\n",
    "c['multiMaster'] = False\n",
])
def test_multimaster_with_amqp_or_postgresql_is_accepted(tmp_path, body):
    assert load_config(write(tmp_path, body)) is not None
