"""The master's half of the Perspective Broker protocol: login, slave perspectives, commands."""
