"""The SlaveAPI: actions on slaves over HTTP (see docs/slaveapi.md)."""
