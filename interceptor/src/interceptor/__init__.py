"""The HTTP interceptor: each API request of a web service becomes one event on Kafka.

    from interceptor import ApiEventMiddleware, kafka_lifespan                          # FastAPI, Starlette
    app = FastAPI(lifespan=kafka_lifespan({"bootstrap.servers": "kafka:9092"}, spool_dir="/var/spool/shop"))
    app.add_middleware(ApiEventMiddleware, service="shop", topic="http_events")

    instrument_flask(app, service="shop")                                             # Flask
    MIDDLEWARE = ["interceptor.django.ApiEventDjangoMiddleware", ...]                 # Django (settings.py)

Any other ASGI or WSGI app: `create_api_event_middleware(app, ...)`, `create_wsgi_api_event_middleware(app, ...)`
after `configure_producer(...)`.
"""

from interceptor.asgi import ApiEventMiddleware, create_api_event_middleware
from interceptor.events import UNMATCHED_ROUTE, EventOptions, build_event, event_schema
from interceptor.lifespan import kafka_lifespan
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
    "kafka_lifespan",
    "producer_stats",
    "send_message_to_kafka",
    "shutdown_producer",
]
