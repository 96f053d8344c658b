"""Data: synthetic video QA generation, video writing and dataset helpers."""
