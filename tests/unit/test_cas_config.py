"""c['cas'] validated into CASSettings (master/cas/config.py), and checked by load_config."""

import pytest

from buildfarm.master.cas.config import validate_cas_config
from buildfarm.master.cas.settings import DEFAULT_EXPIRY_DAYS, CASSettings
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
