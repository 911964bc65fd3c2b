"""Benchmarks, run by ``galvana bench NAME``; each reports figures beside a baseline run."""
