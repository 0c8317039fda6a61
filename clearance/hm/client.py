"""The High Mobility HTTP client (framework-free).

One ``requests.Session`` per client, (connect, read) timeouts on every call, a FleetPortal
User-Agent. Tokens come from a pluggable store and are renewed ``renew_margin`` seconds before
they run out; a 401 renews once and retries once. Nothing else is retried here: retries belong to
the caller (Celery), guided by ``TransientError`` / ``RateLimited.retry_after``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import requests

from .auth import ACCESS_TOKENS_PATH, HMAuth
from .errors import (
    HMConnectionError,
    HMError,
    HMInterrupted,
    HMTimeout,
    InvalidResponseError,
    error_for_status,
)
from .tokens import InMemoryTokenStore, TokenStore
from .types import (
    ClearanceRequest,
    ClearanceResult,
    Eligibility,
    FleetVehicle,
    Token,
    VehicleAccessToken,
)
from .version import __version__

logger = logging.getLogger("clearance.hm")

DEFAULT_TIMEOUT: tuple[float, float] = (5, 30)
DEFAULT_RENEW_MARGIN = 60

# Wraps each HTTP call; may cut it short by raising the error it is given (a warm shutdown).
Interruptible = Callable[[Callable[[], BaseException]], AbstractContextManager[None]]


def not_interruptible(error: Callable[[], BaseException]) -> AbstractContextManager[None]:
    return nullcontext()


def default_user_agent() -> str:
    return f"FleetPortal/{__version__} (+python-requests/{requests.__version__})"


class HMClient:
    def __init__(
        self,
        base_url: str,
        auth: HMAuth,
        *,
        token_store: TokenStore | None = None,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        user_agent: str | None = None,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        token_key: str | None = None,
        clock: Callable[[], datetime] | None = None,
        interruptible: Interruptible = not_interruptible,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.token_store: TokenStore = (
            token_store if token_store is not None else InMemoryTokenStore()
        )
        self.session = session or requests.Session()
        self.timeout = timeout
        self.user_agent = user_agent or default_user_agent()
        self.renew_margin = renew_margin
        self.token_key = token_key or f"hm-token:{self.base_url}:{auth.cache_identity()}"
        self._clock = clock or (lambda: datetime.now(UTC))
        self.interruptible = interruptible

    def __repr__(self) -> str:
        return f"HMClient({self.base_url!r}, auth={self.auth.kind})"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self._clock()

    # -- tokens -----------------------------------------------------------------------------

    def get_token(self, *, replace: str | None = None) -> Token:
        """A valid application token, from the store or freshly issued.

        ``replace``: an access token HM just refused (401); it is renewed unless another caller
        already replaced it meanwhile.
        """
        token = self._usable_token(replace)
        if token is not None:
            return token
        with self.token_store.lock(self.token_key):
            token = self._usable_token(replace)
            if token is not None:
                return token
            token = self._fetch_token()
            self.token_store.set(self.token_key, token)
            return token

    def _usable_token(self, replace: str | None) -> Token | None:
        token = self.token_store.get(self.token_key)
        if token is None or not token.is_fresh(self.now(), self.renew_margin):
            return None
        if replace is not None and token.access_token == replace:
            return None
        return token

    def _fetch_token(self) -> Token:
        now = self.now()
        path, body = self.auth.token_request(self.base_url, now)
        response = self._send("POST", path, json_body=body)
        data = self._decode(response, token_endpoint=True)
        try:
            return self.auth.parse_token(data, now)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidResponseError(
                "High Mobility answered the token request without a usable token.",
                status_code=response.status_code,
            ) from exc

    # -- HTTP plumbing ----------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        bearer: str | None = None,
    ) -> requests.Response:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        url = self.base_url + path
        started = time.monotonic()
        try:
            with self.interruptible(HMInterrupted):
                response = self.session.request(
                    method,
                    url,
                    json=json_body,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
        except HMInterrupted:
            logger.warning("HM %s %s cut short: the worker is stopping", method, path)
            raise
        except requests.Timeout as exc:
            logger.warning("HM %s %s timed out", method, path)
            raise HMTimeout() from exc
        except requests.ConnectionError as exc:
            logger.warning("HM %s %s connection failed", method, path)
            raise HMConnectionError() from exc
        except requests.RequestException as exc:
            raise HMConnectionError(
                f"Could not reach High Mobility ({type(exc).__name__})."
            ) from exc
        logger.info(
            "HM %s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _decode(self, response: requests.Response, *, token_endpoint: bool = False) -> Any:
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except (ValueError, RecursionError):  # not JSON, or nested thousands of levels deep
                body = None
        if response.status_code >= 300:
            raise error_for_status(
                response.status_code,
                body,
                headers=dict(response.headers),
                token_endpoint=token_endpoint,
            )
        if response.content and body is None:
            raise InvalidResponseError(status_code=response.status_code)
        return body

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """An authenticated call: one renewal + one retry on 401, nothing more."""
        token = self.get_token()
        response = self._send(
            method, path, json_body=json_body, params=params, bearer=token.access_token
        )
        if response.status_code == 401:
            logger.info("HM %s %s: token refused, renewing once", method, path)
            token = self.get_token(replace=token.access_token)
            response = self._send(
                method, path, json_body=json_body, params=params, bearer=token.access_token
            )
        return self._decode(response)

    @staticmethod
    def _expect(data: Any, kind: type, what: str) -> Any:
        if not isinstance(data, kind):
            raise InvalidResponseError(f"High Mobility sent an unexpected answer for {what}.")
        return data

    # -- fleet clearance --------------------------------------------------------------------

    def request_clearances(self, requests_: Iterable[ClearanceRequest]) -> list[ClearanceResult]:
        """POST /v1/fleets/vehicles: one batch; each VIN gets its own status (maybe ``error``)."""
        vehicles = [item.to_json() for item in requests_]
        if not vehicles:
            return []
        data = self._expect(
            self._call("POST", "/v1/fleets/vehicles", json_body={"vehicles": vehicles}),
            dict,
            "clearance request",
        )
        items = self._expect(data.get("vehicles"), list, "clearance request")
        return [ClearanceResult.from_json(item) for item in items if isinstance(item, dict)]

    def list_clearances(self, filter: Mapping[str, Any] | None = None) -> list[FleetVehicle]:
        """GET /v1/fleets/vehicles with the optional ``filter`` (``{field: {operator, value}}``)."""
        params = {"filter": json.dumps(filter, separators=(",", ":"))} if filter else None
        data = self._expect(
            self._call("GET", "/v1/fleets/vehicles", params=params), list, "the clearance list"
        )
        return [FleetVehicle.from_json(item) for item in data if isinstance(item, dict)]

    def get_clearance(self, vin: str) -> FleetVehicle:
        data = self._expect(
            self._call("GET", f"/v1/fleets/vehicles/{_vin(vin)}"), dict, "a clearance"
        )
        return FleetVehicle.from_json(data)

    def delete_clearance(self, vin: str) -> ClearanceResult:
        """Revoke an approved clearance or cancel a pending one (-> revoking / canceling)."""
        data = self._expect(
            self._call("DELETE", f"/v1/fleets/vehicles/{_vin(vin)}"), dict, "a deletion"
        )
        return ClearanceResult.from_json(data)

    def cancel_activation(self, vin: str) -> ClearanceResult:
        """Deprecated by HM: POST /v1/fleets/{vin}/cancel_activation. Prefer delete_clearance."""
        data = self._expect(
            self._call("POST", f"/v1/fleets/{_vin(vin)}/cancel_activation"), dict, "a cancellation"
        )
        return ClearanceResult.from_json(data)

    # -- legacy per-vehicle tokens ------------------------------------------------------------

    def issue_vehicle_token(self, vin: str) -> VehicleAccessToken:
        """Deprecated by HM: POST /v1/fleets/access_tokens for an approved VIN."""
        now = self.now()
        data = self._expect(
            self._call("POST", "/v1/fleets/access_tokens", json_body={"vin": vin}),
            dict,
            "a vehicle token",
        )
        return _vehicle_token(data, now)

    def refresh_vehicle_token(self, refresh_token: str) -> VehicleAccessToken:
        """OAuth2 ``refresh_token`` grant. The answer carries a rotated refresh token: keep it."""
        now = self.now()
        body = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            **self.auth.oauth_client_fields(self.base_url, now),
        }
        response = self._send("POST", ACCESS_TOKENS_PATH, json_body=body)
        data = self._expect(self._decode(response, token_endpoint=True), dict, "a token refresh")
        return _vehicle_token(data, now)

    def revoke_token(self, token: str, token_type_hint: str = "refresh_token") -> None:  # noqa: S107
        """DELETE /v1/access_tokens (RFC 7009 style body)."""
        body = {
            "token": token,
            "token_type_hint": token_type_hint,
            **self.auth.oauth_client_fields(self.base_url, self.now()),
        }
        response = self._send("DELETE", ACCESS_TOKENS_PATH, json_body=body)
        self._decode(response, token_endpoint=True)

    # -- eligibility and data -----------------------------------------------------------------

    def check_eligibility(self, vin: str, brand: str) -> Eligibility:
        data = self._expect(
            self._call("POST", "/v1/eligibility", json_body={"vin": vin, "brand": brand}),
            dict,
            "eligibility",
        )
        return Eligibility.from_json(data)

    def get_vehicle_data(self, vin: str) -> dict[str, Any]:
        """GET /v1/vehicle-data/autoapi-13/{vin}: the raw Auto API JSON (REST shape)."""
        data: dict[str, Any] = self._expect(
            self._call("GET", f"/v1/vehicle-data/autoapi-13/{_vin(vin)}"), dict, "vehicle data"
        )
        return data


def _vin(vin: str) -> str:
    vin = vin.strip()
    if not vin:
        raise ValueError("VIN is empty")
    return quote(vin, safe="")


def _vehicle_token(data: Mapping[str, Any], now: datetime) -> VehicleAccessToken:
    if not data.get("access_token"):
        raise InvalidResponseError("High Mobility answered without an access token.")
    try:
        expires_in = int(data.get("expires_in") or 3600)
    except (TypeError, ValueError):
        expires_in = 3600
    refresh = data.get("refresh_token")
    authorization_id = data.get("authorization_id")
    status = data.get("status")
    return VehicleAccessToken(
        access_token=str(data["access_token"]),
        refresh_token=str(refresh) if refresh else None,
        expires_at=now + timedelta(seconds=expires_in),
        authorization_id=str(authorization_id) if authorization_id else None,
        scope=str(data.get("scope") or ""),
        status=str(status) if status else None,
    )


__all__ = ["HMClient", "HMError", "default_user_agent"]
