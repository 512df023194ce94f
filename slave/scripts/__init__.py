"""The buildslave command line."""
