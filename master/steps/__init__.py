"""Buildbot's ``buildbot.steps`` module paths, for custom steps and configs that import step
classes from there: each module re-exports buildfarm's steps (master/process/steps/) under
the path Buildbot has them, e.g. ``from buildfarm.master.steps.shell import ShellCommand``."""
