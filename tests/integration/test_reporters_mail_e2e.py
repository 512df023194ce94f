"""``reporters.MailNotifier`` end to end: a real master and slave, and a real SMTP server on
loopback (aiosmtpd requiring STARTTLS with a self-signed certificate the master trusts
through ``SSL_CERT_FILE``, and AUTH with a password from the master's secrets;
tests/fixtures/smtpserver.py).  The test reads the mails the server received: a succeeding
and a failing build are mailed with the template's variables rendered and the failing
build's log attached; a slave with ``notify_on_missing`` that stays away longer than its
``missing_timeout`` is mailed to those addresses; a relay that is down is retried with
backoff and the mail arrives once it is back; a build retried (its slave stopped mid-build)
is mailed once, for the run that ended (Buildbot mails no RETRY); a master stopped or killed
with a mail pending sends it once after its restart."""

import os

import pytest

from fixtures.daemons import Master, free_port, run_cli, wait_for
from fixtures.smtpserver import SMTPServer

PASSWORD = "smtp-pa55"

MASTER_CFG = """\
from buildfarm.master.plugins import reporters, schedulers, secrets, slaves, steps, util

c = BuildmasterConfig = {{}}
c['title'] = 'E2E farm'
c['buildbotURL'] = 'http://127.0.0.1:{www_port}/'
c['slaves'] = [slaves.BuildSlave('bs1', 'pass'),
               slaves.BuildSlave('bs2', 'pass', notify_on_missing=['ops@example.org'], missing_timeout=2)]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['secretsProviders'] = [secrets.SecretInAFile(dirname={secrets_dir!r})]
c['builders'] = [
    util.BuilderConfig(name='passes', slavenames=['bs1'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'ok'])])),
    util.BuilderConfig(name='fails', slavenames=['bs1'],
                       factory=util.BuildFactory([
                           steps.ShellCommand(command=['sh', '-c', 'echo boom; false'])])),
    util.BuilderConfig(name='lost', slavenames=['bs1'], factory=util.BuildFactory([
        steps.ShellCommand(command=['sh', '-c', 'if [ -e {marker} ]; then echo again; '
                                    'else touch {marker}; sleep 120; fi'])])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['passes', 'fails', 'lost'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
template = ('{{{{ buildername }}}} #{{{{ build["number"] }}}} on {{{{ workername }}}}: '
            '{{{{ status_detected }}}} ({{{{ summary }}}}) {{{{ build_url }}}} [{{{{ buildbot_title }}}}]')
formatter = reporters.MessageFormatter(
    template=template, subject='{{{{ buildername }}}} {{{{ "ok" if results == 0 else "broken" }}}}')
c['services'] = [reporters.MailNotifier(
    fromaddr='Buildfarm <ci@example.org>', extraRecipients=['team@example.org'],
    relayhost='localhost', smtpPort={smtp_port}, useTls=True,
    smtpUser='mailer', smtpPassword=util.Secret('smtp_password'),
    extraHeaders={{'X-Builder': util.Interpolate('%(prop:buildername)s')}},
    generators=[
        reporters.BuildStatusGenerator(mode='all', add_logs=True, message_formatter=formatter),
        reporters.WorkerMissingGenerator(workers=['bs2']),
    ],
    backoff_base_s=0.5, backoff_max_s=2.0)]
"""


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    server = SMTPServer(str(tmp_path), free_port(), user="mailer", password=PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", server.cert_file)  # the master trusts the relay's certificate
    yield server
    server.stop()


def lost_marker(fleet) -> str:
    """The file the ``lost`` builder's first run makes before it sleeps."""
    return os.path.join(fleet.root, "lost-once")


def start_master(fleet, smtp: SMTPServer) -> Master:
    secrets_dir = os.path.join(fleet.root, "secrets")
    os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(secrets_dir, "smtp_password"), "w") as f:
        f.write(PASSWORD)
    os.chmod(os.path.join(secrets_dir, "smtp_password"), 0o600)
    return fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, secrets_dir=secrets_dir, smtp_port=smtp.port,
        marker=lost_marker(fleet)))


def build(master: Master, builder: str) -> dict:
    return master.wait_request_complete(master.force(builder))


def mails_about(smtp: SMTPServer, subject_start: str) -> list[dict]:
    return [m for m in smtp.received() if str(m["message"]["Subject"]).startswith(subject_start)]


def test_builds_that_succeed_and_fail_and_a_missing_slave_are_mailed(fleet, smtp):
    smtp.start()
    master = start_master(fleet, smtp)
    fleet.slave(master)
    master.wait_attached("bs1")
    assert build(master, "passes")["result"] == "success"
    assert build(master, "fails")["result"] == "failure"
    wait_for(lambda: mails_about(smtp, "passes") and mails_about(smtp, "fails"), "the two build mails")

    [passed], [failed] = mails_about(smtp, "passes"), mails_about(smtp, "fails")
    for received in (passed, failed):
        assert received["tls"] and received["authenticated"]
        assert received["from"] == "ci@example.org" and received["to"] == ["team@example.org"]
        assert received["message"]["From"] == "Buildfarm <ci@example.org>"
        assert received["message"]["To"] == "team@example.org"
    assert passed["message"]["Subject"] == "passes ok"
    assert passed["message"]["X-Builder"] == "passes"
    body, log = passed["message"].iter_parts()
    assert body.get_content().startswith("passes #1 on bs1: passing build (Build succeeded!) http://127.0.0.1:")
    assert "/builds/" in body.get_content() and "[E2E farm]" in body.get_content()
    assert log.get_filename().endswith(".stdio") and "ok" in log.get_content()

    assert failed["message"]["Subject"] == "fails broken"
    body, log = failed["message"].iter_parts()
    assert body.get_content().startswith("fails #1 on bs1: failed build (BUILD FAILED")
    assert "boom" in log.get_content()

    # bs2 never attached: past its missing_timeout, its notify_on_missing address is mailed.
    wait_for(lambda: [m for m in smtp.received() if m["to"] == ["ops@example.org"]],
             "the missing-slave mail")
    [missing] = [m for m in smtp.received() if m["to"] == ["ops@example.org"]]
    assert missing["message"]["Subject"] == "buildfarm E2E farm: slave bs2 missing"
    assert missing["message"].get_content_type() == "text/plain"
    assert "bs2" in missing["message"].get_content()


def test_a_relay_that_is_down_is_retried_and_the_mail_arrives_once_it_is_back(fleet, smtp):
    master = start_master(fleet, smtp)  # nothing listens on the relay's port yet
    fleet.slave(master)
    master.wait_attached("bs1")
    assert build(master, "fails")["result"] == "failure"  # builds go on while mails fail
    wait_for(lambda: master.log_text().count("failed (attempt") >= 2, "two failed attempts logged")
    assert "Unable to connect to SMTP server" in master.log_text()
    assert smtp.received() == []

    smtp.start()
    wait_for(lambda: mails_about(smtp, "fails"), "the mail, once the relay is back")
    [failed] = mails_about(smtp, "fails")
    assert failed["message"]["Subject"] == "fails broken" and failed["tls"] and failed["authenticated"]


def test_a_retried_build_is_mailed_once_for_the_run_that_ended(fleet, smtp):
    smtp.start()
    master = start_master(fleet, smtp)
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force("lost")
    wait_for(lambda: os.path.exists(lost_marker(fleet)), "lost#1 running its step")
    run_cli("buildslave", "stop", slave.basedir, check=True)  # lost#1 ends RETRY
    run_cli("buildslave", "start", slave.basedir, check=True)  # the request runs again: lost#2
    assert master.wait_request_complete(brid, deadline_s=60)["result"] == "success"
    builds = master.get("/api/v1/builds?builder=lost")["builds"]
    assert sorted((b["number"], b["results"]) for b in builds) == [(1, 5), (2, 0)]
    assert build(master, "passes")["result"] == "success"  # a later mail: lost's are all in by then
    wait_for(lambda: mails_about(smtp, "passes"), "the mail of the build after")

    [lost] = mails_about(smtp, "lost")  # none for lost#1: mode 'all' does not mail a RETRY
    assert lost["message"]["Subject"] == "lost ok"
    body, log = lost["message"].iter_parts()
    assert body.get_content().startswith("lost #2 on bs1: passing build (Build succeeded!)")
    assert "again" in log.get_content()


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_master_restarted_with_a_mail_pending_sends_it_once(fleet, smtp, how):
    master = start_master(fleet, smtp)  # the relay is down
    fleet.slave(master)
    master.wait_attached("bs1")
    assert build(master, "fails")["result"] == "failure"
    wait_for(lambda: "failed (attempt" in master.log_text(), "a failed attempt logged")
    master.halt(how)
    assert smtp.received() == []

    smtp.start()
    run_cli("buildmaster", "start", master.basedir, check=True)
    wait_for(lambda: mails_about(smtp, "fails"), "the pending mail sent after the restart")
    master.wait_attached("bs1")
    assert build(master, "passes")["result"] == "success"
    wait_for(lambda: mails_about(smtp, "passes"), "the next build's mail")
    build_mails = [m for m in smtp.received() if m["to"] == ["team@example.org"]]  # not bs2's
    assert [m["message"]["Subject"] for m in build_mails] == ["fails broken", "passes ok"]
    [failed] = mails_about(smtp, "fails")
    assert failed["tls"] and failed["authenticated"] and failed["to"] == ["team@example.org"]
    assert "boom" in list(failed["message"].iter_parts())[1].get_content()
