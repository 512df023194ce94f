"""``MailNotifier`` (Buildbot's ``reporters.mail``): mails each report through an SMTP relay.

The message is one MIME mail per report: its body is the formatter's text (``text/plain`` or
``text/html`` per the formatter's ``template_type``), with the logs a generator's ``add_logs``
names and the patches of ``add_patch`` attached; ``Subject`` and ``From`` (``fromaddr``),
``To`` and ``Cc`` as Buildbot chooses them (below), ``Date`` from the master's clock and
``extraHeaders`` (rendered with the build's properties and secrets when the report is of one
build).

Recipients: the report's users (a slave gone missing: its ``notify_on_missing`` addresses;
builds: the interested users, the authors of the build's changes and who forced it),
each passed through ``lookup`` (a domain appended to bare names, or an object with
``getAddress(name)``) when ``sendToInterestedUsers``; ``extraRecipients`` go to ``Cc`` when
there are interested users, to ``To`` otherwise.  A mail with nobody to send it to is given up.

SMTP (twisted.mail.smtp's ESMTP client): ``relayhost``:``smtpPort``; ``useTls`` requires
STARTTLS, ``useSmtps`` speaks TLS from the start (both check the relay's certificate against
the system's trust store: ``SSL_CERT_FILE`` names a private CA); ``smtpUser``/``smtpPassword``
(which may be ``util.Secret``) log in.  A relay that cannot be reached, or answers with a
temporary (4xx) error, or no answer within ``timeout`` seconds, is tried again with backoff
(the ReportSender); a permanent (5xx) refusal of the mail gives the report up.
"""

import re
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from io import BytesIO

from twisted.internet import defer
from twisted.internet.ssl import optionsForClientTLS
from twisted.logger import Logger
from twisted.mail.smtp import AUTHDeclinedError, ESMTPSenderFactory, SMTPClientError
from twisted.protocols.tls import TLSMemoryBIOFactory

from buildfarm.master.process.properties import Properties
from buildfarm.master.reporters.base import ReporterBase
from buildfarm.master.reporters.generators.build import BuildStatusGenerator
from buildfarm.master.reporters.generators.worker import WorkerMissingGenerator
from buildfarm.master.reporters.message import MessageFormatter, MessageFormatterMissingWorker
from buildfarm.master.reporters.sender import ReportRejected

log = Logger()

SMTP_TIMEOUT_S = 60.0  # connecting, and each answer of the relay
ENCODING = "utf-8"
_ADDR = r"(?:\S+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+\.?)"
VALID_EMAIL = re.compile(rf"^(?:{_ADDR}|(.+\s+)?<{_ADDR}>\s*)$")
# A sender may be at a host without a dot (``buildbot@localhost``), as Buildbot takes it.
LOCAL_SENDER = re.compile(r"^[^@\s<>]+@[^@\s<>.]+$")


class Domain:
    """``lookup='example.org'``: a bare user name gets ``@example.org``; an address is kept."""

    def __init__(self, domain: str):
        if not isinstance(domain, str) or not domain or "@" in domain:
            raise ValueError(f"MailNotifier: lookup must be a domain (no '@'), not {domain!r}")
        self.domain = domain

    def getAddress(self, name: str) -> str:  # noqa: N802 - Buildbot's name
        return name if "@" in name else f"{name}@{self.domain}"


class SMTPFailed(Exception):
    """The relay could not take the mail now (unreachable, 4xx, no answer): tried again."""


def _merged(reports: list, key: str) -> list:
    """The ``key`` lists of every report, one after the other."""
    merged = []
    for report in reports:
        value = report.get(key)
        if value:
            merged.extend(value if isinstance(value, list) else [value])
    return merged


def _first(reports: list, key: str):
    return next((r[key] for r in reports if r.get(key) is not None), None)


def format_address(addr: str) -> str:
    """``Name <a@b>`` with the name encoded for a header (RFC 2047) when needed."""
    name, address = parseaddr(addr)
    if not name:
        return address
    return formataddr((name, address), charset=ENCODING)


def _header(text: str) -> str | Header:
    """``text`` as a header value: RFC 2047-encoded when it is not ASCII."""
    return text if text.isascii() else Header(text, ENCODING)


def _attachment(text: str, filename: str) -> MIMEText:
    part = MIMEText(text, "plain", ENCODING)  # base64: any line length passes (RFC 5322 2.1.1)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def default_generators(watched_workers="all", missing_formatter=None) -> list:
    """Buildbot's: a mail for each build that passed, failed or warned, and for each slave
    gone missing (``watchedWorkers``), both in HTML."""
    return [
        BuildStatusGenerator(message_formatter=MessageFormatter(template_type="html")),
        WorkerMissingGenerator(workers=watched_workers, message_formatter=missing_formatter
                               or MessageFormatterMissingWorker(template_type="html")),
    ]


class MailNotifier(ReporterBase):
    """Mails each report through ``relayhost`` (see the module's docstring)."""

    def __init__(self, fromaddr: str, sendToInterestedUsers: bool = True, extraRecipients=(),  # noqa: N803
                 generators=None, relayhost: str = "localhost", smtpPort: int = 25,  # noqa: N803
                 useTls: bool = False, useSmtps: bool = False, smtpUser=None, smtpPassword=None,  # noqa: N803
                 lookup=None, extraHeaders=None, watchedWorkers=None,  # noqa: N803
                 messageFormatterMissingWorker=None, dumpMailsToLog: bool = False,  # noqa: N803
                 timeout: float = SMTP_TIMEOUT_S, name: str | None = None, **kwargs):
        if extraRecipients is None:  # Buildbot's default
            extraRecipients = ()
        if not isinstance(fromaddr, str) or not (VALID_EMAIL.search(fromaddr)
                                                 or LOCAL_SENDER.match(parseaddr(fromaddr)[1])):
            raise ValueError(f"MailNotifier: fromaddr must be an email address, not {fromaddr!r}")
        if isinstance(extraRecipients, str) or not isinstance(extraRecipients, list | tuple):
            raise ValueError("MailNotifier: extraRecipients must be a list or tuple of addresses")
        for recipient in extraRecipients:
            if not isinstance(recipient, str) or not VALID_EMAIL.search(recipient):
                raise ValueError(f"MailNotifier: extra recipient {recipient!r} is not a valid email")
        if lookup is not None and not isinstance(lookup, str) and not hasattr(lookup, "getAddress"):
            raise ValueError("MailNotifier: lookup must be a domain or an object with getAddress(name)")
        if extraHeaders is not None and not isinstance(extraHeaders, dict):
            raise ValueError("MailNotifier: extraHeaders must be a dict")
        if not isinstance(relayhost, str) or not relayhost:
            raise ValueError(f"MailNotifier: relayhost must be a host name, not {relayhost!r}")
        if not isinstance(smtpPort, int) or not 0 < smtpPort < 65536:
            raise ValueError(f"MailNotifier: smtpPort must be a port number, not {smtpPort!r}")
        legacy = watchedWorkers is not None or messageFormatterMissingWorker is not None
        if generators is not None and legacy:
            raise ValueError("MailNotifier: watchedWorkers and messageFormatterMissingWorker shape the "
                             "default generators; with generators=, give a "
                             "reporters.WorkerMissingGenerator(workers=..., message_formatter=...) instead")
        if generators is None:
            generators = default_generators(watchedWorkers if watchedWorkers is not None else "all",
                                            messageFormatterMissingWorker)
        super().__init__(generators, name=name, **kwargs)
        self.fromaddr = fromaddr
        self.sendToInterestedUsers = sendToInterestedUsers
        self.extraRecipients = list(extraRecipients)
        self.relayhost = relayhost
        self.smtpPort = smtpPort
        self.useTls = bool(useTls)
        self.useSmtps = bool(useSmtps)
        self.smtpUser = smtpUser
        self.smtpPassword = smtpPassword
        self.lookup = Domain(lookup) if isinstance(lookup, str) else lookup
        self.extraHeaders = dict(extraHeaders or {})
        self.dumpMailsToLog = bool(dumpMailsToLog)
        self.timeout = timeout

    # -- the message -----------------------------------------------------------------------

    async def create_email(self, reports: list) -> tuple[Message, list[str]]:
        """The MIME mail of ``reports`` (one, usually) and the addresses it goes to."""
        body = "".join(r["body"] if isinstance(r["body"], str) else str(r["body"]) for r in reports)
        if not body.endswith("\n\n"):
            body += "\n\n"
        subject = _first(reports, "subject") or ""
        kind = _first(reports, "type") or "plain"
        if kind not in ("plain", "html"):
            raise ReportRejected(f"a mail's body is plain or html, not {kind!r} (the formatter's "
                                 "template_type)")
        builds, logs = _merged(reports, "builds"), _merged(reports, "logs")
        patches = _merged(reports, "patches")
        if logs or patches:
            message = MIMEMultipart()
            message.attach(MIMEText(body, kind, ENCODING))
            for index, patch in enumerate(patches):
                message.attach(_attachment(patch["body"], f"source patch {index}"))
            for one in logs:
                name = f"{one['stepname']}.{one['name']}"
                if len(builds) > 1 and "buildername" in one:
                    name = f"{one['buildername']}.{name}"
                message.attach(_attachment((one.get("content") or {}).get("content") or "", name))
        else:
            message = MIMEText(body, kind, ENCODING)
        message["Date"] = formatdate(self.master.reactor.seconds(), localtime=False)
        message["Subject"] = _header(" ".join(subject.splitlines()))
        message["From"] = format_address(self.fromaddr)
        for key, value in (await self._rendered_headers(builds)).items():
            if key in message:
                log.warn("MailNotifier {name}: extraHeaders' {key} is already in the mail: not added",
                         name=self.name, key=key)
                continue
            message[key] = str(value)
        if _first(reports, "worker") is not None:  # a slave gone missing: its notify addresses
            recipients = sorted(set(_merged(reports, "users")))
            if recipients:
                message["To"] = ", ".join(format_address(a) for a in recipients)
            return message, recipients
        interested = await self.interested_addresses(_merged(reports, "users"))
        return message, self._address(message, interested)

    async def _rendered_headers(self, builds: list) -> dict:
        if not self.extraHeaders:
            return {}
        props = Properties()
        if len(builds) == 1:
            for key, (value, source) in (builds[0].get("properties") or {}).items():
                props.setProperty(key, value, source)
        return await self.render_secrets(self.extraHeaders, props)

    async def interested_addresses(self, users: list) -> set[str]:
        """The valid addresses of ``users`` (through ``lookup``), if ``sendToInterestedUsers``."""
        if not self.sendToInterestedUsers:
            return set()
        addresses = set()
        for user in users:
            address = user
            if self.lookup is not None:
                address = await defer.maybeDeferred(self.lookup.getAddress, user)
            if address is None:
                continue
            if address.count("@") > 1:  # git's 'User <u@example.org>@example.org'
                address = address[:address.rindex("@")]
            if VALID_EMAIL.search(address):
                addresses.add(address)
            else:
                log.warn("MailNotifier {name}: {address!r} is not a valid email: not mailed",
                         name=self.name, address=address)
        return addresses

    def _address(self, message: Message, interested: set[str]) -> list[str]:
        """Set ``To`` and ``Cc``: the extra recipients are Cc'd when there are interested users."""
        to, cc = set(interested), set()
        if self.sendToInterestedUsers and to:
            cc.update(self.extraRecipients)
        else:
            to.update(self.extraRecipients)
        if to:
            message["To"] = ", ".join(format_address(a) for a in sorted(to))
        if cc:
            message["Cc"] = ", ".join(format_address(a) for a in sorted(cc))
        return sorted(to | cc)

    # -- sending ---------------------------------------------------------------------------

    async def sendMessage(self, reports: list) -> None:  # noqa: N802 - Buildbot's name
        message, recipients = await self.create_email(reports)
        if not recipients:
            raise ReportRejected("nobody to mail it to (no interested user, extraRecipients or "
                                 "notify_on_missing address)")
        text = message.as_bytes()
        log.info("MailNotifier {name}: sending mail ({size} bytes) to {to}", name=self.name,
                 size=len(text), to=", ".join(recipients))
        if self.dumpMailsToLog:
            log.info("MailNotifier {name}: mail data:\n{data}", name=self.name,
                     data=text.decode(ENCODING, "replace"))
        await self.send_mail(text, [parseaddr(r)[1] for r in recipients])

    async def send_mail(self, data: bytes, recipients: list[str]) -> None:
        """Hand ``data`` to the relay for ``recipients`` (a failure raises)."""
        user, password = await self.render_secrets([self.smtpUser, self.smtpPassword])
        use_auth = bool(user and password)
        done: defer.Deferred = defer.Deferred()
        factory = _SenderFactory(
            self.master.reactor, _bytes(user), _bytes(password), parseaddr(self.fromaddr)[1], recipients,
            BytesIO(data), done, retries=0, timeout=self.timeout,
            requireTransportSecurity=self.useTls, requireAuthentication=use_auth,
            hostname=self.relayhost if self.useTls or use_auth else None)
        if self.useSmtps:
            factory = TLSMemoryBIOFactory(optionsForClientTLS(self.relayhost), True, factory)
        self.master.reactor.connectTCP(self.relayhost, self.smtpPort, factory, timeout=self.timeout)
        try:
            await done
        except AUTHDeclinedError as e:  # a secret rotated later passes: tried again
            raise SMTPFailed(f"{self._relay()} refused the login: {_why(e)}") from e
        except SMTPClientError as e:
            why = f"{self._relay()}: {_why(e)}"
            if e.code is not None and 500 <= e.code < 600:
                raise ReportRejected(why) from e
            raise SMTPFailed(why) from e

    def _relay(self) -> str:
        return f"SMTP relay {self.relayhost}:{self.smtpPort}"


def _why(error: SMTPClientError) -> str:
    resp = error.resp.decode(ENCODING, "replace") if isinstance(error.resp, bytes) else str(error.resp)
    return f"{error.code} {resp}".strip() if error.code not in (None, -1) else resp


def _bytes(value) -> bytes | None:
    return value.encode(ENCODING) if isinstance(value, str) else value


class _SenderFactory(ESMTPSenderFactory):
    """twisted.mail's sender whose answer timeouts run on the master's clock."""

    def __init__(self, clock, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        protocol = super().buildProtocol(addr)
        protocol.callLater = self.clock.callLater
        return protocol


__all__ = ["Domain", "MailNotifier"]
