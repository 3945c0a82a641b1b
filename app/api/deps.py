"""Annotated dependency aliases: route signatures stay one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:
    from app.main import Services


async def services(request: Request) -> Services:
    """The objects the lifespan built for this process (async: a sync dependency costs a thread hop)."""
    svc: Services = request.app.state.services
    return svc


ServicesDep = Annotated["Services", Depends(services)]
