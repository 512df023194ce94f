"""Slave logins over PB, in memory (iosim): failed logins are limited per slave name and per
address, while a slave that reconnects with the right password always attaches."""

import pytest

from buildfarm.master.pb.manager import PBManager
from fixtures import pbclient
from fixtures.pbclient import PBLogin

clock, master = pbclient.clock, pbclient.master  # the pytest fixtures of the slave port's tests

SLAVE_HOST = "10.0.0.5"
ATTACKER = "10.6.6.6"


@pytest.fixture
def login(master, clock):
    factory = PBManager(master).make_factory()

    def connect(name="bs1", password="pass", peer=SLAVE_HOST) -> PBLogin:
        return PBLogin(factory, clock, name=name, password=password, peer=peer)
    return connect


def test_a_guessed_slave_password_is_limited_but_the_slave_itself_reconnects(master, login):
    login().drop()
    for _ in range(10):
        assert "wrong password" in login(password="guess", peer=ATTACKER).refusal()
    refused = login(password="pass", peer=ATTACKER)  # even the right one: no oracle past the limit
    assert "too many failed logins" in refused.refusal()
    assert "bs1" not in master.botmaster.slaves
    assert login().attached and "bs1" in master.botmaster.slaves


def test_unknown_slave_names_count_against_their_source(login):
    for number in range(50):
        login(name=f"nobody{number}", peer=ATTACKER)
    assert "too many failed logins from 10.6.6.6" in login(peer=ATTACKER).refusal()
    assert login().attached


def test_a_slave_reconnecting_quickly_with_the_right_password_is_never_limited(login):
    for _ in range(100):
        connection = login(peer="10.0.0.9")
        assert connection.attached
        connection.drop()


def test_a_misconfigured_slave_gets_in_once_its_password_is_fixed(login, clock):
    for _ in range(10):
        login(password="old", peer="10.0.0.9")
    assert "too many failed logins" in login(peer="10.0.0.9").refusal()
    clock.advance(60)  # its reconnect backoff
    assert login(peer="10.0.0.9").attached


def test_the_limiter_outlives_a_new_factory(master, login, clock):
    manager = PBManager(master)
    for _ in range(10):
        PBLogin(manager.make_factory(), clock, name="bs2", password="guess", peer=ATTACKER)
    later = PBLogin(manager.make_factory(), clock, name="bs2", password="pass", peer="10.0.0.10")
    assert "too many failed logins for 'bs2'" in later.refusal()
