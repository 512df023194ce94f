"""Buildbot's ``buildbot.steps.source`` module paths: ``from buildfarm.master.steps.source.git
import Git`` and so on for ``github``, ``gitlab``, ``mercurial`` and ``svn``."""
