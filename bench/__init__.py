"""Benchmarks: each prints one JSON document with its measurements and their ratios to the goals."""
