"""Integration tests share the session's Ray and sample video (tests/conftest.py)."""
