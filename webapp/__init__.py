"""FabLens web app: ``create_app`` is the factory gunicorn and the tests call."""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Flask, Request

from webapp import config

__version__ = "0.1.0"
SPOOL_BYTES = 1024 * 1024


class SpooledRequest(Request):
    """Uploads up to 1 MB stay in memory; larger ones spill to an anonymous temporary file.

    The file has no name on disk (``tempfile.TemporaryFile``) and vanishes when the request
    ends, so a user-chosen name never reaches the file system, and a 60 MB upload costs the
    worker no memory while it is parsed in chunks.
    """

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults -> environment -> ``test_config``; register every module.

    Raises :class:`webapp.config.ConfigError` (a clear message, no half-working app) when the
    templates, static files or artifacts cannot be found, and
    :class:`pipelines.core.modules.RegistryError` when the web and pipeline module registries
    disagree. The database schema is not touched here: ``flask --app webapp db upgrade`` or
    gunicorn's start hook migrates it once.
    """
    settings = config.load(overrides=test_config)
    config.check(settings)
    home = Path(settings["HOME_DIR"])
    app = Flask(__name__, template_folder=str(home / "templates"),
                static_folder=str(home / "static"))
    app.request_class = SpooledRequest
    app.config.update(settings)

    from webapp import (access, api, dashboard, db, errors, events, limits, logs, pages,
                        predictors, runs, versions)
    from pipelines.core.problems import plural
    from webapp.params import IdConverter
    from webapp.registry import check_pipelines, registered

    app.url_map.converters["id"] = IdConverter  # <id:...>: a database id, else a 404
    logs.init_app(app)  # JSON lines on stdout; every request's id, before the access check
    db.init_app(app)
    access.init_app(app)  # first: every request passes its access check before anything else
    predictors.init_app(app)
    errors.init_app(app)
    limits.init_app(app)
    from webapp import metrics  # /metrics; every request counted (webapp/metrics.py)
    metrics.init_app(app)
    from webapp import shadow  # requests in flight, so shadow scoring uses only spare time
    shadow.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(runs.bp)
    app.register_blueprint(events.bp)
    app.register_blueprint(versions.bp)
    versions.init_app(app)  # flask registry add
    from webapp import jobs  # training and batch scoring on Huey's queue (webapp/jobs)
    jobs.init_app(app)
    from webapp import annotation  # the review queue: label uncertain maps and photos
    annotation.init_app(app)
    app.register_blueprint(dashboard.bp)
    modules = registered()
    check_pipelines(modules)  # a web module without its pipeline, or the reverse: no app
    for spec in modules:
        if spec.ready:
            for blueprint in spec.blueprints:
                app.register_blueprint(blueprint)
    app.jinja_env.globals.update(app_version=__version__, modules=modules, run_url=runs.run_url)
    app.jinja_env.filters["plural"] = plural  # {{ n|plural('row') }}: "1 row", "3 rows"
    return app
