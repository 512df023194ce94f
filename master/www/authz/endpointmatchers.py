"""Buildbot's ``buildbot.www.authz.endpointmatchers`` path (master/auth/authz.py)."""

from buildfarm.master.auth.authz import (
    AnyControlEndpointMatcher,
    AnyEndpointMatcher,
    EnableSchedulerEndpointMatcher,
    EndpointMatcherBase,
    ForceBuildEndpointMatcher,
    RebuildBuildEndpointMatcher,
    StopBuildEndpointMatcher,
)

__all__ = ["AnyControlEndpointMatcher", "AnyEndpointMatcher", "EnableSchedulerEndpointMatcher",
           "EndpointMatcherBase", "ForceBuildEndpointMatcher", "RebuildBuildEndpointMatcher",
           "StopBuildEndpointMatcher"]
