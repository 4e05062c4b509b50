"""tmserver: the HTTP face of tmlib (REST API, map tiles, authentication).

The server adds no analysis logic of its own: every route parses its request,
checks the caller's permission and calls the library. Create an app with
:func:`tmserver.app.create_app`.
"""
