"""Secrets in a build on a real master in memory: c['secretsProviders'] is validated, a build
fetches the secrets its steps name, a missing one fails its step with a message naming it, and
a rendered value is stored as <name> in properties, state strings and logs."""


import pytest_twisted

from buildfarm.common.results import EXCEPTION, SUCCESS
from buildfarm.master.config import load_config
from fixtures.mastercfg import config_errors as errors_of
from fixtures.mastercfg import write_master_cfg as write
from fixtures.memorymaster import running_step, start_memory_master

TOKEN = "tok-0123456789abcdef"

CFG = """\
from buildfarm.master.plugins import slaves, schedulers, secrets, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['secretsProviders'] = [secrets.SecretInAFile(dirname={dirname!r})]
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'], factory=util.BuildFactory([
    steps.SetProperty(property='url', value=util.Interpolate('https://ci:%(secret:token)s@example.org/')),
    steps.SetProperty(property='nothing', value=util.Secret('absent')),
]))]
c['builders'].append(util.BuilderConfig(name='envs', slavenames=['bs1'], env={{'TOKEN': util.Secret('gone')}},
                                        factory=util.BuildFactory([steps.ShellCommand(command=['true'])])))
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def secrets_dir(tmp_path):
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "token").write_text(TOKEN + "\n")
    (directory / "token").chmod(0o600)
    return directory


def test_secrets_providers_load_and_are_kept_in_order(tmp_path):
    directory = secrets_dir(tmp_path)
    config = load_config(write(tmp_path, CFG.format(dirname=str(directory))))
    assert [type(p).__name__ for p in config.secrets_providers] == ["SecretInAFile"]
    assert not [w for w in config.warnings if "secretsProviders" in w]


def test_a_wrong_provider_is_an_error_at_its_line_naming_what_was_expected(tmp_path):
    directory = secrets_dir(tmp_path)
    errors = errors_of(tmp_path, f"""\
        from buildfarm.master.plugins import secrets, util
        c = BuildmasterConfig = {{}}
        c['secretsProviders'] = [
            secrets.SecretInAFile({str(directory)!r}),
            'a string',
            secrets.SecretInAFile({str(tmp_path / 'nowhere')!r}),
        ]
        """)
    assert errors == [
        "master.cfg:3: c['secretsProviders'] holds 'a string', not a secrets provider (expected "
        "secrets.SecretInAFile(dirname) or secrets.SecretInPass(...))",
        f"master.cfg:6: SecretInAFile: directory {tmp_path / 'nowhere'} does not exist",
    ]


def test_secrets_providers_must_be_a_list(tmp_path):
    errors = errors_of(tmp_path, """\
        c = BuildmasterConfig = {}
        c['secretsProviders'] = 'x'
        """)
    assert errors == ["master.cfg:2: c['secretsProviders'] must be a list"]


def test_an_open_secret_file_stops_the_config_at_the_providers_line(tmp_path):
    directory = secrets_dir(tmp_path)
    (directory / "token").chmod(0o644)
    errors = errors_of(tmp_path, CFG.format(dirname=str(directory)))
    assert len(errors) == 1
    assert errors[0].startswith("master.cfg:4: SecretInAFile: permissions 0o644 on file token")


@pytest_twisted.ensureDeferred
async def test_a_build_renders_its_secrets_and_stores_only_their_names(tmp_path):
    directory = secrets_dir(tmp_path)
    master = await start_memory_master(tmp_path, CFG.format(dirname=str(directory)))
    try:
        run = await running_step(master, "linux")
        build = run.build
        steps = master.botmaster.builders["linux"].config.factory.steps
        build.steps = steps
        await build._fetch_secrets()
        assert await build._run_step(1, steps[0]) == SUCCESS
        assert build.properties.getProperty("url") == f"https://ci:{TOKEN}@example.org/"  # the step's value

        assert await build._run_step(2, steps[1]) == EXCEPTION
        rows = await master.db.steps.get_all(build.buildid)
        failed = rows[-1]
        assert failed["state_string"].startswith(
            "secret 'absent' is not found in any provider (SecretInAFile(")
        logs = await master.db.logs.get_all(failed["stepid"])
        text = await master.db.logs.get_text(logs[0]["logid"])
        assert "secret 'absent' is not found" in text and "Traceback" not in text

        build.properties.setProperty("note", f"seen {TOKEN}", "test")
        await build._store_properties()
        stored = (await master.db.builds.get(build.buildid))["properties"]
        assert stored["url"] == "https://ci:<token>@example.org/"
        assert stored["note"] == "seen <token>"
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_a_missing_secret_in_the_builders_env_fails_the_step_not_the_build(tmp_path):
    master = await start_memory_master(tmp_path, CFG.format(dirname=str(secrets_dir(tmp_path))))
    try:
        run = await running_step(master, "envs")
        build = run.build
        build.steps = master.botmaster.builders["envs"].config.factory.steps
        await build._fetch_secrets()
        assert await build._run_step(1, build.steps[0]) == EXCEPTION
        failed = (await master.db.steps.get_all(build.buildid))[-1]
        assert failed["state_string"].startswith("secret 'gone' is not found in any provider")
    finally:
        await master.stopService()
