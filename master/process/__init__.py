"""Builders, builds and the BotMaster that assigns build requests to slaves."""
