"""Benchmark and comparison harness (sits on top of the families)."""
