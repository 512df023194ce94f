"""Schedulers: what turns a user's or a timer's wish into build requests."""
