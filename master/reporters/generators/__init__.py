"""Report generators: which events deserve a report, and the report (Buildbot's paths)."""
