"""`mlops serve`: the prediction service from the command line.

Mounted by the main CLI with `app.add_typer(serve_app)` (no name: `serve` becomes a
top-level command). Heavy imports (torch, MLflow, uvicorn) happen inside the command.
Also runnable alone: `python -m serving.cli serve --port 8000`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mlops.settings import get_settings

serve_app = typer.Typer(help="The prediction service.")


@serve_app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default: serving.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: serving.port).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="uvicorn worker processes (default: serving.workers)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error.")] = "info",
) -> None:
    """Serve the registry's champion (and challenger) over HTTP: predictions, feedback,
    model info, admin, health and metrics. Docs at /docs."""
    from serving.server import run_server

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_server(get_settings(), host=host, port=port, workers=workers, log_level=log_level)


def main() -> None:
    """Run this sub-app alone (`python -m serving.cli serve ...`)."""
    standalone = typer.Typer(no_args_is_help=True)
    standalone.add_typer(serve_app)

    @standalone.callback()
    def _root() -> None:
        """The prediction service of the mlops loop."""

    standalone()


if __name__ == "__main__":
    main()
