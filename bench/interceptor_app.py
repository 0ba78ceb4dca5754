"""The app the interceptor benchmark serves: a small JSON endpoint, with or without the middleware
(BENCH_MIDDLEWARE=1|0), producing to BENCH_KAFKA. Run by bench/interceptor.py under uvicorn."""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

from interceptor import ApiEventMiddleware, configure_producer

app = FastAPI()


class Product(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, object]:
    """The smallest endpoint there is: the interceptor's cost shows at its largest."""
    return {"id": item_id, "name": f"item-{item_id}", "price": 9.5}


@app.get("/products")
async def products(page: int = 1) -> list[Product]:
    """A page of a catalogue, validated and serialised by FastAPI: what a shop's endpoint does."""
    start = (page - 1) * 20
    return [
        Product(id=i, name=f"product-{i}", price=5 + i % 90, tags=["shop", f"t{i % 7}"])
        for i in range(start, start + 20)
    ]


if os.environ.get("BENCH_MIDDLEWARE") == "1":
    configure_producer({"bootstrap.servers": os.environ["BENCH_KAFKA"]}, spool_dir=os.environ["BENCH_SPOOL"])
    app.add_middleware(ApiEventMiddleware, service="bench", topic=os.environ["BENCH_TOPIC"])
