"""Source checkout steps (Buildbot's ``buildbot.steps.source``): one module per VC system."""
