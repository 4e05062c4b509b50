"""Python client and ``tm_client`` command line of a TissueMAPS server."""

from tmclient.api import TmClient
from tmclient.base import TmClientError

__all__ = ["TmClient", "TmClientError"]
