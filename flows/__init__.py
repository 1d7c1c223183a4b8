"""Prefect flows: the DAGs. They only compose tasks."""
