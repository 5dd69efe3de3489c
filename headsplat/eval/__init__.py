"""Measurement: reenactment metrics (plain functions), the identity model, baselines, the self- and
cross-reenactment protocols and their reports."""
