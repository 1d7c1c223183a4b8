"""The core library of the MLOps loop: pure, typed logic with no Prefect imports."""
