"""The buildfarm version, reported by slaves in getVersion and by the master's API."""

VERSION = "0.1.0"
