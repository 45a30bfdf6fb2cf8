"""Data in: samples, the pool store, readers and ingestion, the built-in stream."""
