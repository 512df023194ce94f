"""Secrets providers: SecretInAFile on a real directory, SecretInPass on a real ``pass``
store with a real GnuPG key, and the manager that asks them in order."""

import os
import shutil
import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from buildfarm.master.plugins import secrets
from buildfarm.master.secrets.interfaces import ISecretProvider, SecretProviderError
from buildfarm.master.secrets.manager import SecretManager
from buildfarm.master.secrets.providers.file import SecretInAFile
from buildfarm.master.secrets.providers.passwordstore import SecretInPass


def reactor():
    from twisted.internet import reactor
    return reactor


def secret_file(directory, name, text, mode=0o600):
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


# SecretInAFile

def test_the_providers_are_in_the_plugins_namespace_and_at_buildbots_paths():
    from buildfarm.master.secrets.providers import file, passwordstore
    assert secrets.SecretInAFile is file.SecretInAFile is SecretInAFile
    assert secrets.SecretInPass is passwordstore.SecretInPass is SecretInPass


def test_both_providers_provide_isecretprovider(tmp_path):
    assert verifyObject(ISecretProvider, SecretInAFile(str(tmp_path)))
    assert verifyObject(ISecretProvider, SecretInPass(dirname=str(tmp_path)))


@pytest_twisted.ensureDeferred
async def test_a_file_secret_is_the_files_text_without_its_trailing_newlines(tmp_path):
    secret_file(tmp_path, "token", "s3cr3t value\r\n\n")
    provider = SecretInAFile(str(tmp_path))
    assert provider.config_problems() == []
    assert await provider.get(reactor(), "token") == "s3cr3t value"


@pytest_twisted.ensureDeferred
async def test_strip_false_keeps_the_files_text_whole(tmp_path):
    secret_file(tmp_path, "token", "s3cr3t\n")
    assert await SecretInAFile(str(tmp_path), strip=False).get(reactor(), "token") == "s3cr3t\n"


@pytest_twisted.ensureDeferred
async def test_with_suffixes_a_secret_is_the_file_of_its_name_and_a_suffix(tmp_path):
    secret_file(tmp_path, "token.txt", "from txt\n")
    secret_file(tmp_path, "other", "no suffix", mode=0o644)  # not a secret file: not checked
    provider = SecretInAFile(str(tmp_path), suffixes=[".txt"])
    assert provider.config_problems() == []
    assert await provider.get(reactor(), "token") == "from txt"
    assert await provider.get(reactor(), "other") is None


@pytest_twisted.ensureDeferred
async def test_a_secret_without_a_file_is_none_and_no_name_leaves_the_directory(tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    secret_file(tmp_path, "outside", "not in the directory")
    provider = SecretInAFile(str(inner))
    assert await provider.get(reactor(), "missing") is None
    assert await provider.get(reactor(), "../outside") is None


def test_a_missing_directory_is_a_config_problem(tmp_path):
    problems = SecretInAFile(str(tmp_path / "nowhere")).config_problems()
    assert problems == [f"SecretInAFile: directory {tmp_path / 'nowhere'} does not exist"]


@pytest.mark.parametrize("mode", [0o604, 0o602, 0o601, 0o644])
def test_a_secret_file_others_may_access_is_a_config_problem_naming_it(tmp_path, mode):
    secret_file(tmp_path, "token", "s3cr3t", mode=mode)
    secret_file(tmp_path, "fine", "ok", mode=0o640)
    problems = SecretInAFile(str(tmp_path)).config_problems()
    assert len(problems) == 1
    assert f"permissions {oct(mode)} on file token" in problems[0]
    assert "accessible by others" in problems[0]


@pytest_twisted.ensureDeferred
async def test_a_file_opened_to_others_after_the_config_loaded_is_not_read(tmp_path):
    provider = SecretInAFile(str(tmp_path))
    assert provider.config_problems() == []
    secret_file(tmp_path, "token", "s3cr3t", mode=0o644)
    with pytest.raises(SecretProviderError, match="permissions 0o644 on file token"):
        await provider.get(reactor(), "token")


def test_wrong_arguments_are_config_problems(tmp_path):
    assert "dirname must be a directory's path" in SecretInAFile(None).config_problems()[0]
    assert "suffixes must be a list" in SecretInAFile(str(tmp_path), suffixes=".txt").config_problems()[0]


# SecretInPass, on a real store

@pytest.fixture
def password_store(tmp_path, monkeypatch):
    """A pass store encrypted to a GnuPG key without passphrase made here; yields (store, insert)."""
    yield from make_password_store(tmp_path, monkeypatch, passphrase="")


@pytest.fixture
def protected_password_store(tmp_path, monkeypatch):
    """The same, its key protected by the passphrase ``PASSPHRASE``."""
    yield from make_password_store(tmp_path, monkeypatch, passphrase=PASSPHRASE)


PASSPHRASE = "correct horse"  # with a space: pass splits PASSWORD_STORE_GPG_OPTS at spaces


def make_password_store(tmp_path, monkeypatch, passphrase):
    if shutil.which("pass") is None or shutil.which("gpg") is None:
        pytest.fail("pass and gpg are needed (make install-system installs them)")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    # A fixed key-protection count: the agent's calibration of it costs seconds per key.
    (home / "gpg-agent.conf").write_text("s2k-count 65536\n")
    store = tmp_path / "store"
    env = {**os.environ, "GNUPGHOME": str(home), "PASSWORD_STORE_DIR": str(store)}
    monkeypatch.setenv("GNUPGHOME", str(home))

    def run(*argv, stdin=None):
        subprocess.run(argv, env=env, input=stdin, check=True, capture_output=True, text=True, timeout=60)

    run("gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase,
        "--quick-gen-key", "buildfarm test <test@example.invalid>",
        "future-default", "default", "never")
    run("pass", "init", "test@example.invalid")
    yield store, lambda name, text: run("pass", "insert", "-m", name, stdin=text)
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False, timeout=30)


@pytest_twisted.ensureDeferred
async def test_a_pass_secret_is_the_first_line_of_its_entry(password_store):
    store, insert = password_store
    insert("ci/token", "s3cr3t-from-pass\nuser: ci\n")
    provider = SecretInPass(dirname=str(store))
    assert provider.config_problems() == []
    assert await provider.get(reactor(), "ci/token") == "s3cr3t-from-pass"


@pytest_twisted.ensureDeferred
async def test_a_secret_pass_does_not_hold_is_none(password_store):
    store, _ = password_store
    provider = SecretInPass(dirname=str(store))
    assert await provider.get(reactor(), "nothing/here") is None
    assert await provider.get(reactor(), "--help") is None


@pytest_twisted.ensureDeferred
async def test_gpg_passphrase_unlocks_a_protected_key_and_a_wrong_one_does_not(protected_password_store):
    store, insert = protected_password_store
    insert("token", "behind-a-passphrase\n")
    assert await SecretInPass(gpgPassphrase="wrong", dirname=str(store)).get(reactor(), "token") is None
    assert await SecretInPass(gpgPassphrase=PASSPHRASE, dirname=str(store)).get(reactor(), "token") == \
        "behind-a-passphrase"


def test_a_missing_pass_directory_or_pass_is_a_config_problem(tmp_path, monkeypatch):
    assert SecretInPass(dirname=str(tmp_path / "nowhere")).config_problems() == [
        f"SecretInPass: directory {tmp_path / 'nowhere'} does not exist"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "pass does not exist in PATH" in SecretInPass().config_problems()[0]


def test_the_passphrase_and_the_store_go_to_pass_in_its_environment(tmp_path):
    env = SecretInPass(gpgPassphrase="pw", dirname=str(tmp_path)).environment()
    assert env["PASSWORD_STORE_DIR"] == str(tmp_path)
    assert env["PASSWORD_STORE_GPG_OPTS"] == "--batch --pinentry-mode loopback --passphrase-fd 0"
    assert "pw" not in env["PASSWORD_STORE_GPG_OPTS"]  # it goes to gpg's stdin, never to its argv
    assert "PASSWORD_STORE_GPG_OPTS" not in SecretInPass(dirname=str(tmp_path)).environment()


# The manager

@implementer(ISecretProvider)
class Answering:
    """A provider answering from a dict (or failing), recording what it was asked."""

    def __init__(self, name, values=None, error=None):
        self.name, self.values, self.error, self.asked = name, values or {}, error, []

    def config_problems(self):
        return []

    def get(self, reactor, name):
        self.asked.append(name)
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(self.values.get(name))

    def __repr__(self):
        return self.name


def test_the_manager_s_test_provider_is_an_isecretprovider():
    assert verifyObject(ISecretProvider, Answering("a"))


@pytest_twisted.ensureDeferred
async def test_providers_are_asked_in_order_and_the_first_that_has_the_secret_wins():
    first, second, third = Answering("first", {"a": "1"}), Answering("second", {"a": "2", "b": "2"}), \
        Answering("third", {"b": "3"})
    manager = SecretManager([first, second, third])
    assert await manager.get(reactor(), "a") == "1"
    assert await manager.get(reactor(), "b") == "2"
    assert (first.asked, second.asked, third.asked) == (["a", "b"], ["b"], [])


@pytest_twisted.ensureDeferred
async def test_a_failing_provider_is_skipped_and_named_when_the_secret_is_missing():
    broken = Answering("broken", error=SecretProviderError("SecretInPass: pass did not answer"))
    manager = SecretManager([broken, Answering("other", {"a": "1"})])
    fetched = await manager.fetch(reactor(), ["a", "b"])
    assert fetched.values == {"a": "1"}
    assert fetched.missing == {"b": "secret 'b' is not found in any provider (broken, other); "
                                    "SecretInPass: pass did not answer"}


@pytest_twisted.ensureDeferred
async def test_file_then_pass_a_real_chain(tmp_path, password_store):
    store, insert = password_store
    insert("token", "from-pass\n")
    insert("only_in_pass", "pass-only\n")
    files = tmp_path / "files"
    files.mkdir()
    secret_file(files, "token", "from-file\n")
    manager = SecretManager([SecretInAFile(str(files)), SecretInPass(dirname=str(store))])
    fetched = await manager.fetch(reactor(), ["token", "only_in_pass", "nowhere"])
    assert fetched.values == {"token": "from-file", "only_in_pass": "pass-only"}
    assert list(fetched.missing) == ["nowhere"]
