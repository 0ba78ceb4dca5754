"""demo-shop: a small FastAPI service with the interceptor in front of it.

Routes a real shop has (browse, search, product, cart, checkout, payment, login), a route that fails and a
slow one, so the pipeline sees realistic status codes and latencies. Run: `python -m demo.app`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from interceptor import ApiEventMiddleware, kafka_lifespan, producer_stats


class Product(BaseModel):
    id: int
    name: str
    price: float


log = logging.getLogger("demo.app")

PRODUCTS = {i: Product(id=i, name=f"product-{i}", price=round(5 + (i * 7.3) % 95, 2)) for i in range(1, 201)}


class CartItem(BaseModel):
    product_id: int
    quantity: int = 1


class Payment(BaseModel):
    order_id: str
    amount: float


class Login(BaseModel):
    username: str
    password: str


STATS_PATH = "/_interceptor/stats"


def create_app(
    *,
    service: str,
    topic: str,
    stats_log_seconds: float = 60.0,
    producer: dict[str, Any] | None = None,
    **interceptor_options: Any,
) -> FastAPI:
    """The shop; `producer` holds `configure_producer`'s arguments (started and flushed with the app by
    `kafka_lifespan`), `interceptor_options` the middleware's (EventOptions) besides service and topic."""

    @asynccontextmanager
    async def stats_reporter(app: FastAPI) -> AsyncIterator[None]:
        reporter = asyncio.create_task(_log_stats(stats_log_seconds))
        yield
        reporter.cancel()

    lifespan = kafka_lifespan(**producer, lifespan=stats_reporter) if producer is not None else stats_reporter
    app = FastAPI(title=service, lifespan=lifespan)
    app.add_middleware(
        ApiEventMiddleware, service=service, topic=topic, exclude_paths={"/healthz", STATS_PATH},
        **interceptor_options,
    )  # fmt: skip
    carts: dict[str, list[CartItem]] = {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(STATS_PATH)
    async def interceptor_stats() -> dict[str, int]:
        """The producer's counters: produced, delivered, failed, spooled, replayed, dropped, ..."""
        return producer_stats()

    @app.get("/")
    async def home() -> dict[str, object]:
        return {"featured": [PRODUCTS[i] for i in (1, 2, 3)]}

    @app.get("/products")
    async def browse(page: int = 1) -> dict[str, object]:
        start = (max(page, 1) - 1) * 20 + 1
        return {"page": page, "items": [PRODUCTS[i] for i in range(start, min(start + 20, 201))]}

    @app.get("/products/{product_id}")
    async def product(product_id: int) -> Product:
        if product_id not in PRODUCTS:
            raise HTTPException(status_code=404, detail="no such product")
        return PRODUCTS[product_id]

    @app.get("/search")
    async def search(q: str = "") -> dict[str, object]:
        await asyncio.sleep(random.uniform(0.005, 0.03))  # a search backend takes a moment
        return {"q": q, "items": [p for p in PRODUCTS.values() if q and q in p.name][:20]}

    @app.get("/cart")
    async def cart(request: Request) -> dict[str, object]:
        return {"items": carts.get(request.headers.get("x-user-id", "anonymous"), [])}

    @app.post("/cart/items", status_code=201)
    async def add_to_cart(item: CartItem, request: Request) -> dict[str, object]:
        if item.product_id not in PRODUCTS:
            raise HTTPException(status_code=404, detail="no such product")
        carts.setdefault(request.headers.get("x-user-id", "anonymous"), []).append(item)
        return {"added": item.product_id}

    @app.post("/checkout")
    async def checkout(request: Request) -> dict[str, object]:
        user = request.headers.get("x-user-id", "anonymous")
        if not carts.get(user):
            raise HTTPException(status_code=409, detail="cart is empty")
        total = sum(PRODUCTS[i.product_id].price * i.quantity for i in carts[user])
        return {"order_id": f"o-{random.getrandbits(40):x}", "total": round(float(total), 2)}

    @app.post("/payments")
    async def pay(payment: Payment, request: Request) -> dict[str, object]:
        await asyncio.sleep(random.uniform(0.02, 0.08))  # the payment provider is slow
        if random.random() < 0.05:
            raise HTTPException(status_code=402, detail="payment declined")
        carts.pop(request.headers.get("x-user-id", "anonymous"), None)
        return {"order_id": payment.order_id, "paid": payment.amount}

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        if body.password == "wrong":
            raise HTTPException(status_code=401, detail="invalid credentials")
        return {"token": "demo-token-not-a-secret"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(random.uniform(0.2, 0.6))
        return {"status": "finally"}

    @app.get("/errors/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug in the demo shop")

    return app


async def _log_stats(every: float) -> None:
    last: dict[str, int] = {}
    while True:
        await asyncio.sleep(every)
        stats = producer_stats()
        if stats != last:
            log.info("interceptor %s", " ".join(f"{k}={v}" for k, v in sorted(stats.items())))
            last = stats


def main() -> None:
    import uvicorn

    from config.settings import load_settings
    from event_log.topic import client_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    ic = settings.interceptor
    app = create_app(
        service=settings.demo.service_name,
        topic=settings.kafka.topic,
        stats_log_seconds=ic.stats_log_seconds,
        producer={
            "config": client_config(settings),
            "spool_dir": settings.spool_dir / settings.demo.service_name,
            "spool_max_bytes": ic.spool_max_mb << 20,
            "spool_fsync": ic.spool_fsync,
        },
        unmatched_route=ic.unmatched_route,
        anonymise_client=ic.anonymise_client,
        user_id_header=ic.user_id_header,
        capture_headers=ic.capture_headers,
        capture_query_params=ic.capture_query_params,
        deny_headers=ic.deny_headers,
        deny_query_params=ic.deny_query_params,
    )
    uvicorn.run(app, host=settings.demo.host, port=settings.demo.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
