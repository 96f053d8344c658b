"""Benchmarks: side-by-side measurements of Heron against its own ceilings and naive peers (docs/benchmarks.md)."""
