"""The MLflow Model Registry side of the loop: quality gate, registration, aliases, loading."""
