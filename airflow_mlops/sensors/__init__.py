"""Sensors: waits that can be long, deferrable to the triggerer."""
