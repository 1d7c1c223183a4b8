"""`python -m mlops_cli`: the `mlops` command without the installed script."""

from mlops_cli.main import app

app()
