"""Buildbot's reporters on buildfarm: generators, formatters and reporters of ``c['services']``
(see docs/configuration.md, "Reporters")."""
