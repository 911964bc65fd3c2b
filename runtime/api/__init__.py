"""The actor message API: length-prefixed msgpack frames over a Unix socket or TCP.

See :mod:`runtime.api.protocol` for the wire format, :mod:`runtime.api.server` for the
trio server and :mod:`runtime.client` for the Python client.
"""

from runtime.api.protocol import PROTOCOL_VERSION, ErrorCode
from runtime.api.server import ApiConfig, ApiServer, FollowUp, ServerThread, default_socket_path

__all__ = [
    "PROTOCOL_VERSION",
    "ApiConfig",
    "ApiServer",
    "ErrorCode",
    "FollowUp",
    "ServerThread",
    "default_socket_path",
]
