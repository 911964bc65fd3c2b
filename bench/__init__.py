"""Benchmarks, run by ``galvana bench NAME``.

Each reports ratios against a baseline run beside it.
"""
