"""Batches of scans: one image's work (process), the results book (results), the local thread runner (local)."""
