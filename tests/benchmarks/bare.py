"""The ceiling of `make bench`: a bare FastAPI route, served by the same uvicorn as the service.

One GET with a path parameter that answers a small JSON object of a volume's shape: what any FastAPI service
pays per request before it does any work of its own.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/bare/{name}")
async def bare(name: str) -> dict[str, str]:
    """A volume-shaped answer, built from the path alone."""
    return {
        "pool": "bench",
        "project": "p1",
        "type": "container",
        "name": name,
        "content_type": "filesystem",
        "linstor_name": "incus-volume-0123456789abcdef0123456789abcdef",
    }
