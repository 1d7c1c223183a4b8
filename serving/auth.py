"""Credentials: an API key for the prediction endpoints, a bearer token for the admin ones.

- Prediction endpoints (`/v1/predict`, `/v1/feedback`) need header `X-API-Key` equal to
  `settings.serving.api_key` when one is set (open otherwise).
- Admin endpoints (`/v1/admin/...`) always need `Authorization: Bearer <admin_token>`.

No credential: 401 (with `WWW-Authenticate` for the bearer scheme); a wrong one: 403.
Comparisons are constant-time. The checks are plain functions so the hot path calls
them without FastAPI's dependency machinery; `admin_dependency` wraps them for routes.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.security import APIKeyHeader, HTTPBearer

from mlops.settings import Settings
from serving.errors import RequestError

API_KEY_HEADER = "x-api-key"

api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
"""For the OpenAPI document: prediction endpoints take an API key header."""
admin_scheme = HTTPBearer(auto_error=False, scheme_name="AdminToken")
"""For the OpenAPI document: admin endpoints take a bearer token."""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def check_api_key(settings: Settings, given: str | None) -> None:
    """Refuse a prediction request without the configured API key.

    Raises:
        RequestError: 401 without the header, 403 with another key.
    """
    expected = settings.serving.api_key
    if expected is None:
        return
    if not given:
        raise RequestError(401, "unauthorized", "header X-API-Key is required", "X-API-Key")
    if not _same(given, expected.get_secret_value()):
        raise RequestError(403, "forbidden", "the API key is not valid", "X-API-Key")


def check_admin(settings: Settings, authorization: str | None) -> None:
    """Refuse an admin request without the admin bearer token.

    Raises:
        RequestError: 401 without a bearer token, 403 with another token.
    """
    challenge = {"WWW-Authenticate": 'Bearer realm="mlops-serving-admin"'}
    if not authorization:
        raise RequestError(
            401,
            "unauthorized",
            "admin endpoints need header Authorization: Bearer <admin token>",
            "Authorization",
            headers=challenge,
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestError(
            401,
            "unauthorized",
            "expected Authorization: Bearer <admin token>",
            "Authorization",
            headers=challenge,
        )
    if not _same(token.strip(), settings.admin_token.get_secret_value()):
        raise RequestError(403, "forbidden", "the admin token is not valid", "Authorization")


def admin_dependency(settings: Settings) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency enforcing `check_admin`."""

    async def require_admin(request: Request) -> None:
        check_admin(settings, request.headers.get("authorization"))

    return require_admin


def api_key_dependency(settings: Settings) -> Callable[[Request], Awaitable[None]]:
    """A FastAPI dependency enforcing `check_api_key`."""

    async def require_api_key(request: Request) -> None:
        check_api_key(settings, request.headers.get(API_KEY_HEADER))

    return require_api_key
