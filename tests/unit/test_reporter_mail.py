"""``MailNotifier`` (master/reporters/mail.py): the MIME mail it builds of a report (type,
subject, From/To/Cc, lookup, extraHeaders, logs attached), its arguments' checks and default
generators, and its SMTP conversation with a real server on loopback (aiosmtpd with STARTTLS
and AUTH, tests/fixtures/smtpserver.py): delivered, refused for good, retried."""

import email
import email.policy
import os

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface.verify import verifyObject

from buildfarm.master.config import MasterConfig
from buildfarm.master.process.properties import Interpolate
from buildfarm.master.reporters.generators.build import BuildStatusGenerator
from buildfarm.master.reporters.generators.worker import WorkerMissingGenerator
from buildfarm.master.reporters.interfaces import IReporter
from buildfarm.master.reporters.mail import Domain, MailNotifier, SMTPFailed
from buildfarm.master.reporters.message import MessageFormatterMissingWorker
from buildfarm.master.reporters.sender import ReportRejected
from fixtures.daemons import free_port
from fixtures.memorymaster import MASTER_CFG, start_memory_master
from fixtures.smtpserver import SMTPServer

NOW = 1_700_000_000.0


@pytest_twisted.async_yield_fixture
async def master(tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "list_id").write_text("ci.example.org")
    os.chmod(secrets_dir / "list_id", 0o600)
    cfg = MASTER_CFG + (f"from buildfarm.master.plugins import secrets\n"
                        f"c['secretsProviders'] = [secrets.SecretInAFile(dirname={str(secrets_dir)!r})]\n")
    started = await start_memory_master(tmp_path, cfg, now=NOW)
    yield started
    await started.stopService()


def notifier(master, **kwargs) -> MailNotifier:
    kwargs.setdefault("extraRecipients", ["team@example.org"])
    mail = MailNotifier("Buildfarm <ci@example.org>", **kwargs)
    mail.master = master
    return mail


def build_report(body="Build passed.", kind="plain", users=(), logs=(), builder="runtests") -> dict:
    build = {"buildid": 7, "number": 3, "builder": {"name": builder},
             "properties": {"buildername": [builder, "Build"], "branch": ["main", "Build"]}}
    return {"body": body, "subject": "Buildbot success in farm on runtests", "type": kind, "results": 0,
            "builds": [build], "users": list(users), "logs": list(logs), "patches": [],
            "extra_info": None}


def missing_report(notify=("ops@example.org",)) -> dict:
    return {"body": "bs1 is missing.\n", "subject": "Buildbot worker bs1 missing", "type": "plain",
            "results": None, "builds": [], "users": list(notify), "logs": [], "patches": [],
            "worker": {"name": "bs1"}, "extra_info": None}


def parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


@pytest_twisted.ensureDeferred
async def test_a_build_report_is_a_plain_mail_to_the_extra_recipients(master):
    message, recipients = await notifier(master).create_email([build_report()])
    mail = parsed(message)
    assert recipients == ["team@example.org"]
    assert mail.get_content_type() == "text/plain"
    assert mail["Subject"] == "Buildbot success in farm on runtests"
    assert mail["From"] == "Buildfarm <ci@example.org>"
    assert mail["To"] == "team@example.org" and mail["Cc"] is None
    assert mail["Date"] == "Tue, 14 Nov 2023 22:13:20 -0000"  # the master's clock
    assert mail.get_content() == "Build passed.\n\n"  # ends with an empty line, as Buildbot's


@pytest_twisted.ensureDeferred
async def test_non_ascii_subjects_and_names_are_encoded_for_the_headers(master):
    report = dict(build_report(), subject="Réussite sur runtests")
    mail = MailNotifier("Fermé <ci@example.org>", extraRecipients=["team@example.org"])
    mail.master = master
    message, _ = await mail.create_email([report])
    raw = message.as_string()
    assert "Réussite" not in raw and "=?utf-8?" in raw
    assert parsed(message)["Subject"] == "Réussite sur runtests"
    assert parsed(message)["From"] == "Fermé <ci@example.org>"


@pytest_twisted.ensureDeferred
async def test_an_html_formatter_makes_an_html_mail(master):
    message, _ = await notifier(master).create_email([build_report("<p>passed</p>", kind="html")])
    assert parsed(message).get_content_type() == "text/html"


@pytest_twisted.ensureDeferred
async def test_interested_users_go_to_to_through_lookup_and_the_extra_recipients_to_cc(master):
    mail = notifier(master, lookup="example.org")
    message, recipients = await mail.create_email([build_report(users=["alice", "bob@other.org", "x y"])])
    assert recipients == ["alice@example.org", "bob@other.org", "team@example.org"]
    assert message["To"] == "alice@example.org, bob@other.org"
    assert message["Cc"] == "team@example.org"


@pytest_twisted.ensureDeferred
async def test_a_lookup_object_may_drop_a_user_and_a_git_double_domain_is_chopped(master):
    class Lookup:
        def getAddress(self, name):  # noqa: N802 - Buildbot's name
            return None if name == "nobody" else f"'{name}' <{name}@example.org>@example.org"

    _, recipients = await notifier(master, lookup=Lookup()).create_email(
        [build_report(users=["nobody", "carol"])])
    assert recipients == ["'carol' <carol@example.org>", "team@example.org"]


@pytest_twisted.ensureDeferred
async def test_without_send_to_interested_users_only_the_extra_recipients_are_mailed(master):
    message, recipients = await notifier(master, sendToInterestedUsers=False).create_email(
        [build_report(users=["alice@example.org"])])
    assert recipients == ["team@example.org"] and message["To"] == "team@example.org"


@pytest_twisted.ensureDeferred
async def test_the_logs_of_add_logs_are_attached(master):
    logs = [{"stepname": "compile", "name": "stdio", "content": {"content": "gcc -c x.c\nerror: boom\n"}}]
    message, _ = await notifier(master).create_email([build_report(logs=logs)])
    mail = parsed(message)
    assert mail.get_content_type() == "multipart/mixed"
    body, attachment = mail.iter_parts()
    assert body.get_content_type() == "text/plain" and body.get_content() == "Build passed.\n\n"
    assert attachment.get_filename() == "compile.stdio"
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_content() == "gcc -c x.c\nerror: boom\n"


@pytest_twisted.ensureDeferred
async def test_the_patches_of_add_patch_are_attached(master):
    report = build_report()
    report["patches"] = [{"body": "--- a/x\n+++ b/x\n", "level": 1, "subdir": None}]
    message, _ = await notifier(master).create_email([report])
    body, attachment = parsed(message).iter_parts()
    assert body.get_content() == "Build passed.\n\n"
    assert attachment.get_filename() == "source patch 0"
    assert attachment.get_content() == "--- a/x\n+++ b/x\n"


@pytest_twisted.ensureDeferred
async def test_extra_headers_are_rendered_with_the_build_properties_and_secrets(master):
    mail = notifier(master, extraHeaders={"X-Builder": Interpolate("%(prop:buildername)s@%(prop:branch)s"),
                                          "List-Id": Interpolate("<%(secret:list_id)s>"),
                                          "Subject": "ignored: already set"})
    message, _ = await mail.create_email([build_report()])
    assert message["X-Builder"] == "runtests@main"
    assert message["List-Id"] == "<ci.example.org>"
    assert message.get_all("Subject") == ["Buildbot success in farm on runtests"]


@pytest_twisted.ensureDeferred
async def test_a_missing_slave_is_mailed_to_its_notify_addresses_only(master):
    message, recipients = await notifier(master).create_email([missing_report()])
    assert recipients == ["ops@example.org"]
    assert message["To"] == "ops@example.org" and message["Cc"] is None
    assert parsed(message)["Subject"] == "Buildbot worker bs1 missing"


@pytest_twisted.ensureDeferred
async def test_a_mail_with_nobody_to_send_it_to_is_given_up(master):
    with pytest.raises(ReportRejected, match="nobody to mail it to"):
        await notifier(master, extraRecipients=[]).sendMessage([build_report()])


@pytest_twisted.ensureDeferred
async def test_a_json_formatter_cannot_make_a_mail(master):
    with pytest.raises(ReportRejected, match="plain or html, not 'json'"):
        await notifier(master).create_email([build_report(kind="json")])


def test_the_default_generators_are_buildbots_in_html_and_watched_workers_shapes_them():
    build, missing = MailNotifier("ci@example.org").generators
    assert isinstance(build, BuildStatusGenerator) and build.formatter.template_type == "html"
    assert isinstance(missing, WorkerMissingGenerator) and missing.workers == "all"
    assert missing.formatter.template_type == "html"
    formatter = MessageFormatterMissingWorker()
    _, missing = MailNotifier("ci@example.org", watchedWorkers=["bs1"],
                              messageFormatterMissingWorker=formatter).generators
    assert missing.workers == ["bs1"] and missing.formatter is formatter


def test_extra_recipients_none_is_buildbots_default_of_none():
    assert MailNotifier("ci@example.org", extraRecipients=None).extraRecipients == []


def test_a_domain_lookup_keeps_addresses_and_completes_names():
    assert Domain("example.org").getAddress("alice") == "alice@example.org"
    assert Domain("example.org").getAddress("bob@x.org") == "bob@x.org"
    assert isinstance(MailNotifier("ci@example.org", lookup="example.org").lookup, Domain)


@pytest.mark.parametrize("kwargs, error", [
    ({"fromaddr": "not an address"}, "fromaddr must be an email address"),
    ({"extraRecipients": "a@example.org"}, "extraRecipients must be a list"),
    ({"extraRecipients": ["nope"]}, "extra recipient 'nope' is not a valid email"),
    ({"lookup": 3}, "lookup must be a domain or an object with getAddress"),
    ({"lookup": "a@b.org"}, "lookup must be a domain"),
    ({"extraHeaders": ["X-A"]}, "extraHeaders must be a dict"),
    ({"smtpPort": "25"}, "smtpPort must be a port number"),
    ({"generators": [], "watchedWorkers": ["bs1"]},
     "with generators=, give a reporters.WorkerMissingGenerator"),
])
def test_wrong_arguments_are_refused(kwargs, error):
    kwargs = {"fromaddr": "ci@example.org", **kwargs}
    with pytest.raises(ValueError, match=error):
        MailNotifier(**kwargs)


def test_mailnotifier_provides_ireporter():
    assert verifyObject(IReporter, MailNotifier("ci@example.org"))


# -- SMTP against a real server on loopback ------------------------------------------------


class RealReactorMaster:
    """What ``sendMessage`` reads of the master, on the real reactor (for a real SMTP port)."""

    def __init__(self):
        self.reactor = reactor
        self.config = MasterConfig("master.cfg")


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    server = SMTPServer(str(tmp_path), free_port())
    monkeypatch.setenv("SSL_CERT_FILE", server.cert_file)  # trust its self-signed certificate
    yield server.start()
    server.stop()


def smtp_notifier(server: SMTPServer, **kwargs) -> MailNotifier:
    kwargs = {"relayhost": "localhost", "smtpPort": server.port, "useTls": True, "smtpUser": server.user,
              "smtpPassword": server.password, "timeout": 10.0, **kwargs}
    mail = MailNotifier("ci@example.org", extraRecipients=["team@example.org"], **kwargs)
    mail.master = RealReactorMaster()
    return mail


@pytest_twisted.ensureDeferred
async def test_a_mail_is_delivered_over_starttls_with_auth(smtp):
    await smtp_notifier(smtp).sendMessage([build_report()])
    [received] = smtp.received()
    assert received["from"] == "ci@example.org" and received["to"] == ["team@example.org"]
    assert received["tls"] and received["authenticated"]
    assert received["message"]["Subject"] == "Buildbot success in farm on runtests"
    assert received["message"].get_content() == "Build passed.\n\n"


@pytest_twisted.ensureDeferred
async def test_smtps_speaks_tls_from_the_start(tmp_path, monkeypatch):
    server = SMTPServer(str(tmp_path), free_port(), implicit_tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", server.cert_file)
    server.start()
    try:
        await smtp_notifier(server, useTls=False, useSmtps=True).sendMessage([build_report()])
    finally:
        server.stop()
    [received] = server.received()
    assert received["tls"] and received["authenticated"] and received["to"] == ["team@example.org"]


@pytest_twisted.ensureDeferred
async def test_a_recipient_refused_for_good_gives_the_report_up(smtp):
    smtp.refused_recipients.add("team@example.org")
    with pytest.raises(ReportRejected, match="550"):
        await smtp_notifier(smtp).sendMessage([build_report()])
    assert smtp.received() == []


@pytest_twisted.ensureDeferred
async def test_a_refused_login_is_retried_later(smtp):
    with pytest.raises(SMTPFailed, match="refused the login"):
        await smtp_notifier(smtp, smtpPassword="wrong").sendMessage([build_report()])
    assert smtp.failed_logins >= 1 and smtp.received() == []


@pytest_twisted.ensureDeferred
async def test_an_untrusted_certificate_is_refused(smtp, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(SMTPFailed):
        await smtp_notifier(smtp).sendMessage([build_report()])
    assert smtp.received() == []


@pytest_twisted.ensureDeferred
async def test_a_relay_that_is_down_is_retried_later():
    mail = MailNotifier("ci@example.org", extraRecipients=["team@example.org"], relayhost="127.0.0.1",
                        smtpPort=free_port(), timeout=5.0)
    mail.master = RealReactorMaster()
    with pytest.raises(SMTPFailed, match="Unable to connect"):
        await mail.sendMessage([build_report()])



class ClockMaster:
    """What ``sendMessage`` reads of the master, with a MemoryReactorClock for its time."""

    def __init__(self):
        self.reactor = MemoryReactorClock()
        self.config = MasterConfig("master.cfg")


@pytest_twisted.ensureDeferred
async def test_a_relay_that_never_answers_fails_the_attempt_after_the_timeout_on_the_masters_clock():
    mail = MailNotifier("ci@example.org", extraRecipients=["team@example.org"], relayhost="127.0.0.1",
                        smtpPort=2525, timeout=30.0)
    mail.master = ClockMaster()
    sending = defer.ensureDeferred(mail.sendMessage([build_report()]))
    [(host, port, factory, connect_timeout, _)] = mail.master.reactor.tcpClients
    assert (host, port, connect_timeout) == ("127.0.0.1", 2525, 30.0)
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())  # connected; the relay says nothing
    mail.master.reactor.advance(29.0)
    assert not sending.called
    mail.master.reactor.advance(2.0)
    assert sending.called  # at once: the timeout ran on the master's clock, not the real reactor's
    with pytest.raises(SMTPFailed, match="Timeout waiting for SMTP server response"):
        await sending


@pytest.mark.parametrize("fromaddr", ["buildbot@localhost", "Buildbot <buildbot@localhost>"])
def test_a_sender_at_a_host_without_a_dot_is_taken_as_buildbot_takes_it(fromaddr):
    assert MailNotifier(fromaddr).fromaddr == fromaddr


@pytest.mark.parametrize("fromaddr", ["nobody", "a@b@c", "<@localhost>"])
def test_a_sender_that_is_no_address_is_still_refused(fromaddr):
    with pytest.raises(ValueError, match="fromaddr must be an email address"):
        MailNotifier(fromaddr)
