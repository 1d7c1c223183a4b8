"""Prefect tasks: thin wrappers over `mlops/` that add retries, logging and artifacts."""
