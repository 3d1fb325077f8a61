"""The ``fablens`` command (setup.py's console script): Flask's command line for this app,
so ``fablens db upgrade``, ``fablens registry add``, ``fablens users ...`` and ``fablens jobs
worker`` work without ``--app``, and ``fablens worker`` (the job queue's worker) for short."""
from __future__ import annotations

from flask.cli import FlaskGroup

from webapp import create_app
from webapp.jobs import worker_command

cli = FlaskGroup(create_app=lambda: create_app(), help="FabLens: the web app's commands.")
cli.add_command(worker_command, "worker")


def main() -> None:
    cli.main(prog_name="fablens")


if __name__ == "__main__":  # python -m webapp.cli worker: the same as `fablens worker`
    main()
