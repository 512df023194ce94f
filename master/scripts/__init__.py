"""The ``buildmaster`` command-line interface."""
