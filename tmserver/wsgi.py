"""Production entry point: ``gunicorn 'tmserver.wsgi:app'`` (see README)."""

from tmserver.app import create_app

app = create_app()
