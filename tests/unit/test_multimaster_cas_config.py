"""checkconfig with several masters and the CAS (master/config.py): c['multiMaster'] with the CAS
on local disk is refused in one line saying to use the S3 back-end, and so is a shared store
without a shared upload secret; the S3 back-end with its secret is accepted."""

import pytest

from buildfarm.master.config import (
    MULTI_MASTER_CAS_NEEDS_S3,
    MULTI_MASTER_CAS_NEEDS_SECRET,
    ConfigErrors,
    load_config,
)

PG = "c['db'] = {'db_url': 'postgresql+psycopg://u@127.0.0.1/bf'}\n"
S3 = {"backend": "s3", "bucket": "isolate", "endpoint_url": "http://127.0.0.1:9000",
      "upload_secret": "shared"}


def write(tmp_path, body: str) -> str:
    cfg = tmp_path / "master.cfg"
    cfg.write_text("c = BuildmasterConfig = {}\n" + body)
    return str(cfg)


@pytest.mark.parametrize("cas", [{"backend": "file", "upload_secret": "shared"}, {"upload_secret": "shared"}])
def test_several_masters_with_the_cas_on_local_disk_are_refused_in_one_line(tmp_path, cas):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, f"c['multiMaster'] = True\n{PG}c['cas'] = {cas!r}\n"))
    [error] = caught.value.errors
    assert str(error).endswith(MULTI_MASTER_CAS_NEEDS_S3) and "\n" not in str(error)
    assert "S3 back-end" in MULTI_MASTER_CAS_NEEDS_S3


def test_several_masters_sharing_an_s3_store_need_a_shared_upload_secret(tmp_path):
    cas = {k: v for k, v in S3.items() if k != "upload_secret"}
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, f"c['multiMaster'] = True\n{PG}c['cas'] = {cas!r}\n"))
    assert [str(e).endswith(MULTI_MASTER_CAS_NEEDS_SECRET) for e in caught.value.errors] == [True]


@pytest.mark.parametrize("body", [
    f"c['multiMaster'] = True\n{PG}c['cas'] = {S3!r}\n",
    f"c['multiMaster'] = True\n{PG}",  # no CAS configured: nothing shared
    "c['cas'] = {'backend': 'file'}\n",  # one master: its disk
])
def test_the_s3_back_end_or_one_master_is_accepted(tmp_path, body):
    assert load_config(write(tmp_path, body)) is not None
