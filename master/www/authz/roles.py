"""Buildbot's ``buildbot.www.authz.roles`` path (master/auth/authz.py)."""

from buildfarm.master.auth.authz import (
    RolesFromBase,
    RolesFromEmails,
    RolesFromGroups,
    RolesFromOwner,
    RolesFromUsername,
)

__all__ = ["RolesFromBase", "RolesFromEmails", "RolesFromGroups", "RolesFromOwner", "RolesFromUsername"]
