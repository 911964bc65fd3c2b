"""Benchmarks, run by ``galvana bench NAME``; each reports ratios against a baseline run beside it."""
