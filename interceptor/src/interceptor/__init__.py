"""The HTTP interceptor: each API request of a web service becomes one event on Kafka.

    from interceptor import configure_producer, create_api_event_middleware
    configure_producer({"bootstrap.servers": "127.0.0.1:9092"}, spool_dir="var/spool/shop")
    app = create_api_event_middleware(app, service="shop", topic="http_events")

`create_wsgi_api_event_middleware` is the same for WSGI apps (Flask, Django).
"""

from interceptor.asgi import ApiEventMiddleware, create_api_event_middleware
from interceptor.events import UNMATCHED_ROUTE, EventOptions, build_event, event_schema
from interceptor.producer import configure_producer, producer_stats, send_message_to_kafka, shutdown_producer
from interceptor.wsgi import ApiEventWSGIMiddleware, create_wsgi_api_event_middleware, instrument_flask

__all__ = [
    "UNMATCHED_ROUTE",
    "ApiEventMiddleware",
    "ApiEventWSGIMiddleware",
    "EventOptions",
    "build_event",
    "configure_producer",
    "create_api_event_middleware",
    "create_wsgi_api_event_middleware",
    "event_schema",
    "instrument_flask",
    "producer_stats",
    "send_message_to_kafka",
    "shutdown_producer",
]
