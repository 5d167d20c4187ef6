"""Fake: importing it retains the primary context."""
