"""The HTTP gateway: REST, SSE and WebSocket streams, GraphQL, metrics and a live web
view over the actor message API (see :mod:`runtime.http.gateway`)."""

from runtime.http.gateway import Gateway, GatewayConfig, GatewayThread

__all__ = ["Gateway", "GatewayConfig", "GatewayThread"]
