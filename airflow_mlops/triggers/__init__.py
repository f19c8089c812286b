"""Triggers (run in the triggerer) for the deferrable sensors."""
