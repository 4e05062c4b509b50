"""The REST API under ``/api``: one module per resource, all on :data:`api`."""

from tmserver.routing import Api

api = Api("api", "/api")

# Importing the resource modules declares their routes on `api`.
from tmserver.api import (  # noqa: E402, F401
    channels,
    experiments,
    exports,
    features,
    layout,
    mapobjects,
    plates,
    selections,
    tiles,
    tools,
    wells,
    workflow,
)
