"""WSGI entry point: ``gunicorn wsgi:app``."""

from scm import create_app

app = create_app()
