"""The ``isolateserver`` command line before it talks to a server: help, flags, and bad input as
one line with exit status 2 (its runs against a real master are in
tests/integration/test_isolateserver_e2e.py)."""

import pytest

from buildfarm.common import isolateserver
from fixtures import docexamples


def test_help_lists_the_commands_as_the_docs_show(capsys):
    (argv,) = docexamples.commands("cas.md", "cli-help")
    assert argv[0] == "isolateserver"
    assert isolateserver.run(argv[1:]) == 0
    shown = docexamples.example("cas.md", "cli-help").split("\n", 1)[1]
    assert capsys.readouterr().out == shown


def test_help_of_a_command_shows_its_flags(capsys):
    assert isolateserver.run(["help", "download"]) == 0
    out = capsys.readouterr().out
    for flag in ("--isolated", "--file", "--target", "--cache", "--max-cache-size", "--min-free-space",
                 "--max-items", "--max-age", "--token", "--user"):
        assert flag in out
    assert isolateserver.run(["archive", "--help"]) == 0
    assert "--blacklist" in capsys.readouterr().out


def test_no_command_lists_them_on_stderr_with_status_2(capsys):
    assert isolateserver.run([]) == 2
    assert "commands:" in capsys.readouterr().err


URL = ("-I", "http://127.0.0.1:8010")


@pytest.mark.parametrize("argv, message", [
    (["download", *URL, "-t", "o"], "give either -s HASH or -f HASH DEST"),
    (["download", *URL, "-s", "a" * 40, "-f", "a" * 40, "x"], "give either -s HASH or -f HASH DEST"),
    (["download", *URL, "-s", "xyz"], "-s: 'xyz' is not a sha-1 digest"),
    (["download", *URL, "--namespace", "sha256-gzip", "-s", "a" * 40], "is not a sha-256 digest"),
    (["download", *URL, "-s", "a" * 40, "--max-items", "many"], "--max-items: invalid int value"),
    (["download", *URL, "-s", "a" * 40, "--max-cache-size", "10X"], "is not a size"),
    (["download", *URL, "-s", "a" * 40, "--max-age", "3 weeks"], "is not an age"),
    (["archive", "tree"], "-I/--isolate-server URL is required"),
    (["archive", "-I", "ftp://x", "tree"], "is not an http:// or https:// URL"),
    (["archive", *URL, "--namespace", "a/b", "tree"], "is not a namespace name"),
    (["archive", *URL, "--token", "t", "--user", "u", "tree"], "give --token or --user, not both"),
    (["archive", *URL, "--user", "u", "tree"], "--user needs --password"),
    (["archive", *URL], "required: PATH"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["help", "frobnicate"], "no command 'frobnicate'"),
])
def test_bad_flags_are_one_line_and_status_2(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("ISOLATE_SERVER", raising=False)
    monkeypatch.delenv("ISOLATE_PASSWORD", raising=False)
    assert isolateserver.run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("isolateserver: ") and message in err, err


@pytest.mark.parametrize("text, size", [("0", 0), ("1024", 1024), ("2G", 2 << 30), ("512MiB", 512 << 20),
                                        ("3k", 3072)])
def test_sizes_take_binary_units(text, size):
    assert isolateserver._size(text) == size


@pytest.mark.parametrize("text, seconds", [("90", 90), ("21d", 21 * 86400), ("2h", 7200), ("5m", 300)])
def test_ages_take_units(text, seconds):
    assert isolateserver._age(text) == seconds


def test_credentials_become_headers(monkeypatch):
    monkeypatch.setenv("ISOLATE_TOKEN", "tok")
    args = isolateserver.build_parser().parse_args(["archive", *URL, "x"])
    assert isolateserver._headers(args) == {"Authorization": "Bearer tok"}
    monkeypatch.delenv("ISOLATE_TOKEN")
    args = isolateserver.build_parser().parse_args(["archive", *URL, "--user", "u", "--password", "p", "x"])
    assert isolateserver._headers(args) == {"Authorization": "Basic dTpw"}
