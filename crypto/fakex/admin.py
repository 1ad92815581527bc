"""The admin door, ``/fakex/admin/...`` on the same port: move the clock, set a price or a funding rate,
credit an account, inject or clear faults, override a rate limit, snapshot, save, restart.

Every call needs the header ``X-Fakex-Admin: <api secret>`` (the fake's own credentials, loopback only).
Bodies are JSON, checked by pydantic; a bad one gets 400 with the validation errors.
"""

from __future__ import annotations

import hmac
import threading
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crypto.fakex.engine.errors import Reject
from crypto.fakex.faults import FaultRule
from crypto.fakex.server import ADMIN_PREFIX, Request, Response, ServerContext

if TYPE_CHECKING:
    from crypto.fakex.server import FakeExchange


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdvanceBody(_Body):
    ms: int = Field(ge=0, le=400 * 86_400_000)


class PriceBody(_Body):
    instId: str  # noqa: N815 - the venue's field name
    px: Decimal = Field(gt=0, le=Decimal("1e12"), allow_inf_nan=False)


class FundingBody(_Body):
    instId: str  # noqa: N815
    rate: Decimal | None = Field(ge=-1, le=1, allow_inf_nan=False)


class DepositBody(_Body):
    account: str = "trading"
    ccy: str = Field(min_length=1, max_length=16)
    amount: Decimal = Field(ge=Decimal("-1e15"), le=Decimal("1e15"), allow_inf_nan=False)


class RateLimitBody(_Body):
    endpoint: str = Field(min_length=1, max_length=200)
    limit: int = Field(ge=0)
    window_ms: int = Field(gt=0)


class AdminRoutes:
    name = "admin"
    prefixes = (ADMIN_PREFIX,)

    def __init__(self, owner: FakeExchange) -> None:
        self.owner = owner

    def handle(self, req: Request, ctx: ServerContext) -> Response:
        token = req.headers.get("x-fakex-admin", "")
        if not hmac.compare_digest(token.encode(), ctx.credentials.secret.encode()):
            return Response.json(401, {"error": "X-Fakex-Admin header missing or wrong"})
        action = req.path[len(ADMIN_PREFIX):].strip("/")
        ex = ctx.exchange
        try:
            if req.method == "GET" and action == "time":
                return Response.json(200, {"now_ms": ex.now_ms()})
            if req.method == "GET" and action == "snapshot":
                return Response.json(200, ex.snapshot())
            if req.method == "GET" and action == "faults":
                return Response.json(200, {"active": [r.model_dump() for r in ctx.faults.active()],
                                           "fired": ctx.faults.fired})
            if req.method == "DELETE" and action == "faults":
                ctx.faults.clear()
                return Response.json(200, {"ok": True})
            if req.method != "POST":
                return Response.json(404, {"error": f"no admin action {req.method} {action}"})
            body = req.json()
            if action == "advance":
                advance = AdvanceBody.model_validate(body)
                return Response.json(200, {"now_ms": self.owner.advance(advance.ms)})
            if action == "price":
                price = PriceBody.model_validate(body)
                return Response.json(200, {"markPx": str(ex.set_price(price.instId, price.px))})
            if action == "funding-rate":
                fund = FundingBody.model_validate(body)
                ex.set_funding_rate(fund.instId, fund.rate)
                return Response.json(200, {"ok": True})
            if action == "deposit":
                dep = DepositBody.model_validate(body)
                return Response.json(200, {"bal": str(ex.deposit(dep.account, dep.ccy, dep.amount))})
            if action == "fault":
                rule = FaultRule.model_validate(body)
                ctx.faults.inject(rule, ctx.wall_ms())
                return Response.json(200, {"ok": True})
            if action == "rate-limit":
                lim = RateLimitBody.model_validate(body)
                ctx.limiter.override(lim.endpoint, lim.limit, lim.window_ms)
                return Response.json(200, {"ok": True})
            if action == "save":
                return Response.json(200, {"path": str(self.owner.save())})
            if action == "restart":
                # Answer first, then restart from another thread: the listener this request came through stops.
                threading.Thread(target=self.owner.restart, name="fakex-restart", daemon=True).start()
                return Response.json(202, {"ok": True})
        except ValidationError as exc:
            return Response.json(400, {"error": "bad body", "details": exc.errors(include_url=False)})
        except Reject as exc:
            return Response.json(400, {"error": exc.reason.value, "detail": exc.detail})
        except ValueError as exc:
            return Response.json(400, {"error": str(exc)})
        return Response.json(404, {"error": f"no admin action {req.method} {action}"})
