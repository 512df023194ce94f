"""c['cas'] validated into CASSettings (master/cas/config.py), and checked by load_config."""

import pytest

from buildfarm.master.cas.config import validate_cas_config
from buildfarm.master.cas.settings import DAY_S, DEFAULT_EXPIRY_DAYS, CASSettings, S3Location
from buildfarm.master.config import ConfigErrors, load_config
from tests.fixtures import docexamples


def test_no_cas_section_gives_the_file_store_with_30_days_and_a_random_secret():
    settings, problems = validate_cas_config({}, "/tmp")
    other, _ = validate_cas_config({}, "/tmp")
    assert problems == []
    assert (settings.backend, settings.path, settings.expiry_days) == ("file", "cas", DEFAULT_EXPIRY_DAYS)
    assert len(settings.upload_secret) == 32 and settings.upload_secret != other.upload_secret
    assert "upload_secret" not in repr(settings)


def test_a_full_cas_section_is_taken(tmp_path):
    (tmp_path / "cas.secret").write_text("from-a-file\n")
    settings, problems = validate_cas_config({"cas": {
        "backend": "file", "path": "store", "expiry_days": 7, "max_item_bytes": 1000,
        "inline_max_bytes": 10, "retrieve_inline_max_bytes": 20, "upload_secret": {"file": "cas.secret"}}},
        str(tmp_path))
    assert problems == []
    assert settings == CASSettings("file", "store", 7.0, 1000, 10, 20, b"from-a-file", True)


@pytest.mark.parametrize("cas, message", [
    ([], "must be a dict"),
    ({"backend": "tape"}, "backend"),
    ({"bogus": 1}, "unknown c['cas'] key 'bogus'"),
    ({"expiry_days": 0}, "expiry_days"),
    ({"expiry_days": True}, "expiry_days"),
    ({"max_item_bytes": -1}, "max_item_bytes"),
    ({"max_item_bytes": "1G"}, "max_item_bytes"),
    ({"path": ""}, "path"),
    ({"upload_secret": {"env": "NO_SUCH_VARIABLE_FOR_CAS"}}, "NO_SUCH_VARIABLE_FOR_CAS"),
])
def test_a_bad_cas_section_is_refused_with_the_reason(cas, message):
    _, problems = validate_cas_config({"cas": cas}, "/tmp")
    assert any(message in text for _, text in problems), problems


def test_load_config_reads_and_checks_c_cas(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\nc['cas'] = {'expiry_days': 3}\n")
    assert load_config(str(cfg)).cas.expiry_days == 3.0
    cfg.write_text("c = BuildmasterConfig = {}\nc['cas'] = {'backend': 'tape'}\n")
    with pytest.raises(ConfigErrors, match="backend"):
        load_config(str(cfg))


def test_the_configuration_example_of_docs_cas_md_loads(tmp_path):
    example = docexamples.example("cas.md", "config")
    (tmp_path / "cas.secret").write_text("a secret\n")
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + example)
    settings = load_config(str(cfg)).cas
    assert (settings.backend, settings.expiry_days, settings.upload_secret) == ("file", 30.0, b"a secret")


def test_the_s3_example_of_docs_cas_md_loads(tmp_path, monkeypatch):
    for name, value in (("CAS_S3_KEY", "AKIAEXAMPLE"), ("CAS_S3_SECRET", "s3-secret"),
                        ("CAS_UPLOAD_SECRET", "shared")):
        monkeypatch.setenv(name, value)
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + docexamples.example("cas.md", "store-s3"))
    settings = load_config(str(cfg)).cas
    assert settings.backend == "s3" and settings.secret_is_set and settings.upload_secret == b"shared"
    assert settings.s3 == S3Location("isolate", "cas/", "http://127.0.0.1:9000", "us-east-1", "AKIAEXAMPLE",
                                     "s3-secret")
    assert "s3-secret" not in repr(settings)


def test_the_expiry_example_of_docs_cas_md_loads(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + docexamples.example("cas.md", "store-expiry"))
    settings = load_config(str(cfg)).cas
    assert (settings.expiry_days, settings.janitor_interval_s) == (7.0, 600.0)
    assert settings.expiry.refresh_after_s == pytest.approx(0.7 * DAY_S) and settings.expiry.grace_s == 3600


def test_a_fraction_of_a_day_is_an_expiry_of_seconds():
    settings, problems = validate_cas_config({"cas": {"expiry_days": 2 / 86400}}, "/tmp")
    assert problems == [] and settings.expiry.lifetime_s == pytest.approx(2.0)
    assert settings.expiry.refresh_after_s == pytest.approx(0.2)


@pytest.mark.parametrize("cas, messages", [
    ({"backend": "s3"}, ["['bucket'] must name an S3 bucket"]),
    ({"backend": "s3", "bucket": "Bad_Bucket", "endpoint_url": "ftp://x", "region": "Mars 1",
      "prefix": "a b"}, ["'bucket'", "'prefix'", "'endpoint_url'", "'region'"]),
    ({"backend": "s3", "bucket": "ok-bucket", "access_key_id": "AKIA"}, ["both 'access_key_id' and"]),
    ({"backend": "s3", "bucket": "ok-bucket", "access_key_id": {"env": "NO_SUCH_CAS_KEY"},
      "secret_access_key": "x"}, ["NO_SUCH_CAS_KEY"]),
    ({"bucket": "ok-bucket", "region": "us-east-1"}, ["'bucket'] is only for the 's3' back-end",
                                                      "'region'] is only for the 's3' back-end"]),
    ({"janitor_interval": 0}, ["janitor_interval"]),
    ({"janitor_interval": "1h"}, ["janitor_interval"]),
])
def test_each_problem_of_an_s3_or_janitor_setting_is_one_line(cas, messages):
    _, problems = validate_cas_config({"cas": cas}, "/tmp")
    assert len(problems) == len(messages), problems
    for message, (_, text) in zip(messages, problems, strict=True):
        assert message in text and "\n" not in text
