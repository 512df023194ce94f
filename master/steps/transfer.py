"""Buildbot's ``buildbot.steps.transfer``."""

from buildfarm.master.process.steps.transfer import DirectoryUpload, FileDownload, FileUpload, StringDownload

__all__ = ["DirectoryUpload", "FileDownload", "FileUpload", "StringDownload"]
