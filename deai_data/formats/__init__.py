"""Byte formats: canonical JSON, the manifest, the Merkle content root, and Arrow IPC shards."""
