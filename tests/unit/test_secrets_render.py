"""util.Secret and %(secret:name)s: rendering from the build's fetched secrets, the names a
step needs, and the redaction of rendered values (SecretRedactor, the LogWriter)."""

import random

import pytest
from twisted.internet import defer, task

from buildfarm.master.plugins import steps, util
from buildfarm.master.process.logwriter import LogWriter
from buildfarm.master.process.properties import Interpolate, Properties, Secret, SecretNotFound, secret_names
from buildfarm.master.secrets.redactor import RedactingStream, SecretRedactor

TOKEN = "tok-9f8e7d6c5b4a"


@pytest.fixture
def props():
    p = Properties(branch="main")
    p.add_secrets({"token": TOKEN, "db": "pa55word"}, {"gone": "secret 'gone' is not found in any provider "
                                                              "(SecretInAFile('/s'))"})
    return p


def test_secret_renders_the_fetched_value(props):
    assert util.Secret is Secret
    assert props.render(["echo", Secret("token")]) == ["echo", TOKEN]


def test_interpolate_takes_secrets_beside_properties(props):
    rendered = props.render(Interpolate("https://ci:%(secret:token)s@host/%(prop:branch)s"))
    assert rendered == f"https://ci:{TOKEN}@host/main"


def test_a_rendered_secret_is_redacted_as_its_name_an_unrendered_one_is_not(props):
    props.render(Secret("token"))
    text = f"token {TOKEN} and pa55word"
    assert props.cleanupTextFromSecrets(text) == "token <token> and pa55word"


def test_a_missing_secret_fails_with_a_message_naming_it_and_the_providers(props):
    with pytest.raises(SecretNotFound, match=r"secret 'gone' is not found in any provider \(SecretInAFile"):
        props.render(Secret("gone"))
    with pytest.raises(SecretNotFound, match="secret 'other' was not fetched"):
        props.render(Interpolate("%(secret:other)s"))


def test_secret_names_finds_the_secrets_a_step_renders():
    step = steps.ShellCommand(command=["deploy", util.Secret("token")],
                              env={"DB": util.Interpolate("%(secret:db)s-%(prop:x)s")})
    assert secret_names([step]) == {"token", "db"}
    assert secret_names([steps.ShellCommand(command=["echo", "%(secret:no)s"])]) == set()


def test_secret_names_finds_a_custom_steps_class_attribute_and_its_arguments():
    class Deploy(steps.ShellCommand):
        command = ["deploy", util.Secret("from_class")]

    step = Deploy(env={"K": util.Secret("from_args")})
    assert secret_names([step]) == {"from_class", "from_args"}


def test_the_redactor_replaces_a_longer_secret_containing_another_whole():
    redactor = SecretRedactor()
    redactor.add("abc", "short")
    redactor.add("xxabcxx", "long")
    redactor.add("  \n", "blank")  # whitespace only: never redacted
    assert redactor.redact("xxabcxx abc  \n") == "<long> <short>  \n"
    assert redactor.redact_structure({"k": ["abc", ("xxabcxx",)], "abc": 3}) == \
        {"k": ["<short>", ("<long>",)], "<short>": 3}


def test_a_secret_cut_anywhere_between_pieces_of_a_stream_is_redacted():
    redactor = SecretRedactor()
    redactor.add(TOKEN, "token")
    text = f"$ deploy {TOKEN}\nusing {TOKEN[:5]} then {TOKEN}\ndone t"
    expected = "$ deploy <token>\nusing tok-9 then <token>\ndone t"
    rng = random.Random(16)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), 6))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        stream = RedactingStream(redactor)
        assert "".join(stream.feed(p) for p in pieces) + stream.release() == expected


class Logs:
    def __init__(self):
        self.text = ""

    def append(self, logid, text):
        self.text += text
        return defer.succeed(None)

    def append_many(self, items):
        self.text += "".join(text for _, text in items)
        return defer.succeed(None)

    def finish(self, logid):
        return defer.succeed(None)


class DB:
    def __init__(self):
        self.logs = Logs()


def test_the_log_writer_redacts_header_stdout_and_stderr_even_when_a_secret_is_cut():
    db, clock, redactor = DB(), task.Clock(), SecretRedactor()
    redactor.add(TOKEN, "token")
    writer = LogWriter(db, 1, clock, redactor=redactor)
    writer.add_header(f"argv: ['echo', '{TOKEN}']\n")
    writer.add_stdout(TOKEN[:7])
    clock.advance(1)  # a flush between the two halves
    writer.add_stdout(TOKEN[7:] + "\n")
    writer.add_stderr(f"warning: {TOKEN[:3]}")
    defer.ensureDeferred(writer.finish())
    clock.advance(1)
    assert db.logs.text == "argv: ['echo', '<token>']\n<token>\nwarning: tok"
    assert TOKEN not in db.logs.text


def test_a_secret_rendered_after_the_log_opened_is_redacted_from_then_on():
    db, clock, props = DB(), task.Clock(), Properties()
    props.add_secrets({"token": TOKEN}, {})
    writer = LogWriter(db, 1, clock, redactor=props.redactor)
    props.render(Secret("token"))
    writer.add_stdout(f"{TOKEN}\n")
    defer.ensureDeferred(writer.finish())
    clock.advance(1)
    assert db.logs.text == "<token>\n"
