"""FabLens web app: ``create_app`` is the factory gunicorn and the tests call."""
from __future__ import annotations

import io
import logging
import sys
from pathlib import Path

from flask import Flask, Request

from webapp import config

__version__ = "0.1.0"


def _configure_logging(app: Flask) -> None:
    """Log to stdout so a PaaS captures it (only when nothing configured logging already)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


class InMemoryRequest(Request):
    """Keeps uploaded files in memory (bounded by MAX_CONTENT_LENGTH), never on disk."""

    def _get_file_stream(self, total_content_length, content_type, filename=None,
                         content_length=None):
        return io.BytesIO()


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: defaults -> environment -> ``test_config``; register blueprints."""
    app = Flask(__name__, template_folder=str(config.ROOT / "templates"),
                static_folder=str(config.ROOT / "static"), instance_relative_config=False)
    app.request_class = InMemoryRequest
    app.config.from_mapping(config.DEFAULTS)
    app.config.update(config.from_environment())
    if test_config:
        app.config.update(test_config)
    _configure_logging(app)

    from webapp import api, db, errors, models, pages, sensor

    db.init_app(app)
    models.init_app(app)
    errors.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(sensor.bp)
    app.register_blueprint(api.bp)
    app.jinja_env.globals["app_version"] = __version__
    return app
