"""Buildbot's ``buildbot.www.auth`` path: the ``c['www']['auth']`` kinds, which live in
master/auth/webauth.py."""

from buildfarm.master.auth.webauth import HTPasswdAuth, NoAuth, RemoteUserAuth, UserPasswordAuth

__all__ = ["HTPasswdAuth", "NoAuth", "RemoteUserAuth", "UserPasswordAuth"]
