"""``buildslave create-slave`` options end to end (connection string, TLS, umask,
relocatable basedir, log rotation) and slave-initiated graceful shutdown through a real
master (SIGHUP, shutdown.stamp, and at once when not attached)."""

import datetime
import glob
import ipaddress
import os
import shutil
import signal
import stat
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.application import service
from twisted.logger import ILogObserver, LogLevel

from buildfarm.slave.service import SlaveService
from buildfarm.slave.tap import loadApplication
from fixtures.daemons import MASTER_CFG, Slave, free_port, pid_alive, run_cli, wait_for

STOP_DEADLINE_S = 30.0
STAMP_DEADLINE_S = 30.0
# The slave polls shutdown.stamp every 10 s (the interval's own test, test_slave_bot, advances a
# clock); this slave's buildbot.tac makes it 0.2 s before twistd starts the service.
STAMP_POLL_TAC = """
import buildfarm.slave.service as _slave_service
_slave_service.SHUTDOWN_STAMP_POLL_S = 0.2
"""


def createSlave(basedir, master, *options, name="bs1"):
    return run_cli("buildslave", "create-slave", *options, str(basedir), master, name, "pass",
                   check=True)


def builtFile(slave, name):
    """The path of ``name`` in the workdir of the slave's one builder."""
    [path] = glob.glob(os.path.join(slave.basedir, "*", "build", name))
    return path


def test_connection_string_overrides_the_master_address(fleet, tmp_path):
    master = fleet.master()
    slave = Slave(str(tmp_path / "slave"), "bs1")
    fleet.slaves.append(slave)
    createSlave(slave.basedir, "127.0.0.1:1",  # nothing listens there: the string wins
                "--connection-string", f"tcp:host=127.0.0.1:port={master.pb_port}")

    result = run_cli("buildslave", "start", slave.basedir, check=True)

    assert "buildslave attached to master" in result.stdout
    master.wait_attached("bs1")


def selfSignedCertificate(directory):
    """A key and a self-signed certificate for 127.0.0.1 (written as PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
            ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    keyPath, certPath = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    with open(certPath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


def sslMasterConfig(keyPath, certPath, command):
    """master.cfg text (for ``fleet.master(config=...)``) whose PB port is an ``ssl:`` one."""
    def config(pbPort, wwwPort):
        text = MASTER_CFG.format(slavenames=["bs1"], command=command, pb_port=pbPort,
                                 www_port=wwwPort)
        sslPort = f"ssl:{pbPort}:interface=127.0.0.1:privateKey={keyPath}:certKey={certPath}"
        assert f"'port': {pbPort}," in text
        return text.replace(f"'port': {pbPort},", f"'port': {sslPort!r},")
    return config


def test_use_tls_attaches_to_a_master_with_an_ssl_port(fleet, tmp_path, monkeypatch):
    keyPath, certPath = selfSignedCertificate(str(tmp_path))
    master = fleet.master(config=sslMasterConfig(keyPath, certPath, ["echo", "over tls"]))
    # The slave verifies the master's certificate against the trust roots OpenSSL finds
    # through SSL_CERT_FILE: here, the self-signed certificate itself.
    monkeypatch.setenv("SSL_CERT_FILE", certPath)

    fleet.slave(master, "bs1", "pass", True, "--use-tls")

    master.wait_attached("bs1")
    assert master.wait_request_complete(master.force())["result"] == "success"


def test_tls_slave_refuses_a_master_whose_certificate_it_does_not_trust(fleet, tmp_path):
    keyPath, certPath = selfSignedCertificate(str(tmp_path))
    master = fleet.master(config=sslMasterConfig(keyPath, certPath, ["true"]))

    slave = fleet.slave(master, "bs1", "pass", True, "--use-tls")

    wait_for(lambda: "failed: closed before login" in slave.log_text(),
             "the refused TLS connection in the slave's log")
    assert not master.slave("bs1")["connected"]


def test_umask_applies_to_files_the_builds_create(fleet):
    master = fleet.master(command=["touch", "umask-probe"])
    slave = fleet.slave(master, "bs1", "pass", True, "--umask=077")
    master.wait_attached("bs1")

    assert master.wait_request_complete(master.force())["result"] == "success"

    assert stat.S_IMODE(os.stat(builtFile(slave, "umask-probe")).st_mode) == 0o600


def test_relocatable_slave_runs_after_its_basedir_moved(fleet, tmp_path):
    master = fleet.master(command=["touch", "moved-probe"])
    original = tmp_path / "original"
    createSlave(original, f"127.0.0.1:{master.pb_port}", "--relocatable")
    moved = tmp_path / "moved"
    shutil.move(str(original), str(moved))
    slave = Slave(str(moved), "bs1")
    fleet.slaves.append(slave)  # stopped at teardown

    run_cli("buildslave", "start", str(moved), check=True)

    master.wait_attached("bs1")
    assert master.wait_request_complete(master.force())["result"] == "success"
    assert os.path.isfile(builtFile(slave, "moved-probe"))
    assert os.path.isfile(moved / "twistd.log") and not original.exists()


def tacSlave(basedir) -> SlaveService:
    """The SlaveService a basedir's buildbot.tac builds (not started)."""
    application = loadApplication(str(basedir))
    [slave] = list(service.IServiceCollection(application))
    return slave, application


def test_every_create_slave_option_reaches_the_slave(tmp_path):
    basedir = tmp_path / "slave"
    createSlave(basedir, "master.example.org:9000", "--keepalive=30", "--usepty=1",
                "--umask=027", "--maxdelay=60", "--maxretries=5", "--allow-shutdown=file",
                "--use-tls")

    slave, _ = tacSlave(basedir)

    assert slave.master == "master.example.org:9000" and slave.slavename == "bs1"
    assert slave.keepalive == 30 and slave.bot.runtime.usePTY is True
    assert slave.umask == 0o027 and slave.maxretries == 5 and slave.allowShutdown == "file"
    assert slave.endpointDescription == "tls:host=master.example.org:port=9000"


def logEvent(text):
    return {"log_format": text, "log_time": time.time(), "log_level": LogLevel.info,
            "log_namespace": "test", "log_system": "-"}


def test_log_rotation_follows_log_size_and_log_count(tmp_path):
    basedir = tmp_path / "slave"
    createSlave(basedir, "127.0.0.1:9989", "--log-size=1000", "--log-count=2")
    _, application = tacSlave(basedir)
    observer = application.getComponent(ILogObserver)

    for i in range(100):
        observer(logEvent(f"line {i:03d} " + "x" * 50))

    logs = sorted(p.name for p in basedir.iterdir() if p.name.startswith("twistd.log"))
    assert logs == ["twistd.log", "twistd.log.1", "twistd.log.2"]
    assert all(os.path.getsize(basedir / name) <= 1100 for name in logs)
    assert "line 099" in (basedir / "twistd.log").read_text()


def test_no_logrotate_leaves_the_log_to_twistd(tmp_path):
    basedir = tmp_path / "slave"
    createSlave(basedir, "127.0.0.1:9989", "--no-logrotate")

    _, application = tacSlave(basedir)

    assert application.getComponent(ILogObserver, None) is None


# Slave-initiated graceful shutdown (PROTOCOL §6)


def assertStagesLogged(slave, trigger):
    text = slave.log_text()
    for stage in (trigger, "asking master 127.0.0.1:", "for a graceful shutdown",
                  "accepted the shutdown request; waiting for it to stop this slave",
                  "master requested shutdown; stopping"):
        assert stage in text, f"{stage!r} not in twistd.log"


def test_sighup_asks_the_master_which_stops_the_slave(fleet):
    master = fleet.master()
    slave = fleet.slave(master, "bs1", "pass", True, "--allow-shutdown=signal")
    master.wait_attached("bs1")
    pid = slave.pid

    os.kill(pid, signal.SIGHUP)

    wait_for(lambda: not pid_alive(pid), "the slave to be stopped by the master",
             STOP_DEADLINE_S)
    assertStagesLogged(slave, "SIGHUP received: shutting down")


def test_touching_shutdown_stamp_asks_the_master_which_stops_the_slave(fleet):
    master = fleet.master()
    slave = fleet.slave(master, "bs1", "pass", False, "--allow-shutdown=file")
    with open(os.path.join(slave.basedir, "buildbot.tac"), "a") as tac:
        tac.write(STAMP_POLL_TAC)
    run_cli("buildslave", "start", slave.basedir, check=True)
    master.wait_attached("bs1")
    pid = slave.pid
    stamp = os.path.join(slave.basedir, "shutdown.stamp")
    with open(stamp, "w"):
        pass
    future = time.time() + 60
    os.utime(stamp, (future, future))

    wait_for(lambda: not pid_alive(pid), "the slave to be stopped by the master",
             STAMP_DEADLINE_S)
    assertStagesLogged(slave, "shutdown.stamp touched: shutting down")


def test_sighup_while_not_attached_stops_at_once(fleet, tmp_path):
    basedir = str(tmp_path / "lonely")
    createSlave(basedir, f"127.0.0.1:{free_port()}", "--allow-shutdown=signal")
    slave = Slave(basedir, "bs1")
    fleet.slaves.append(slave)  # stopped at teardown if the test fails
    run_cli("buildslave", "start", basedir, check=True)
    pid = slave.pid

    os.kill(pid, signal.SIGHUP)

    wait_for(lambda: not pid_alive(pid), "the slave to exit", STOP_DEADLINE_S)
    assert "shutdown requested while not attached to a master; stopping now" in slave.log_text()


@pytest.mark.parametrize("option", ["--allow-shutdown=sometimes", "--umask=9"])
def test_bad_option_values_are_refused(tmp_path, option):
    result = run_cli("buildslave", "create-slave", option, str(tmp_path / "s"),
                     "127.0.0.1", "bs1", "pass")

    assert result.returncode == 1 and "Traceback" not in result.stderr
