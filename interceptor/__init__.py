"""The HTTP interceptor: each API request of a web service becomes one event on Kafka.

from interceptor import create_api_event_middleware
app = create_api_event_middleware(app, service="shop", topic="http_events")
"""

from interceptor.asgi import ApiEventMiddleware, create_api_event_middleware
from interceptor.producer import configure_producer, send_message_to_kafka, shutdown_producer

__all__ = [
    "ApiEventMiddleware",
    "configure_producer",
    "create_api_event_middleware",
    "send_message_to_kafka",
    "shutdown_producer",
]
