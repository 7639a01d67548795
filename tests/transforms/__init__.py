"""Tests of the pure transform math (daskgp.transforms)."""
