"""The `mlops` command (`main.app`), the human entry point to the loop, and its `canary`
subcommands.

Tooling above `flows/`: it composes flows, the local stack and the scenarios. Heavy
imports (Prefect, torch, MLflow) happen inside the commands that run them.
"""
