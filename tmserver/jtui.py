"""Routes of the pipeline editor under ``/jtui`` (routes to come)."""

from tmserver.routing import Api

jtui = Api("jtui", "/jtui")
