"""Buildbot's ``buildbot.www.authz`` path: ``Authz`` and its matchers, which live in
master/auth/authz.py."""

from buildfarm.master.auth.authz import Authz, fnmatchStrMatcher, reStrMatcher
from buildfarm.master.www.authz import endpointmatchers, roles

__all__ = ["Authz", "endpointmatchers", "fnmatchStrMatcher", "reStrMatcher", "roles"]
