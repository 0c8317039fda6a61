"""Framework-free High Mobility client (no Django imports anywhere in this package).

Usage::

    from clearance.hm import HMClient, ClientSecretAuth, ClearanceRequest

    client = HMClient("https://sandbox.api.high-mobility.com", ClientSecretAuth(cid, secret))
    results = client.request_clearances([ClearanceRequest("1HMD3W5DA8C7Y5DNA", "sandbox")])
"""

from .auth import (
    CLIENT_ASSERTION_TYPE,
    ClientSecretAuth,
    HMAuth,
    PrivateKeyAuth,
    ServiceAccountAuth,
    audience,
    load_ec_private_key,
)
from .client import DEFAULT_RENEW_MARGIN, DEFAULT_TIMEOUT, HMClient, default_user_agent
from .errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    HMConnectionError,
    HMError,
    HMErrorItem,
    HMInterrupted,
    HMServerError,
    HMTimeout,
    InvalidResponseError,
    NotFoundError,
    PermanentError,
    RateLimited,
    TransientError,
    UnprocessableError,
    VehicleUnreachable,
    error_for_status,
    parse_error_items,
)
from .tokens import InMemoryTokenStore, TokenStore
from .types import (
    BRAND_LABELS,
    CANCELLATION_BRANDS,
    ELIGIBILITY_BRANDS,
    FLEET_BRANDS,
    ChangelogEntry,
    ClearanceRequest,
    ClearanceResult,
    ClearanceStatus,
    Eligibility,
    FleetVehicle,
    Token,
    VehicleAccessToken,
    from_vehicle_data_brand,
    parse_hm_datetime,
    to_vehicle_data_brand,
)
from .version import __version__

__all__ = [
    "BRAND_LABELS",
    "CANCELLATION_BRANDS",
    "CLIENT_ASSERTION_TYPE",
    "DEFAULT_RENEW_MARGIN",
    "DEFAULT_TIMEOUT",
    "ELIGIBILITY_BRANDS",
    "FLEET_BRANDS",
    "AuthenticationError",
    "BadRequestError",
    "ChangelogEntry",
    "ClearanceRequest",
    "ClearanceResult",
    "ClearanceStatus",
    "ClientSecretAuth",
    "ConflictError",
    "Eligibility",
    "FleetVehicle",
    "ForbiddenError",
    "HMAuth",
    "HMClient",
    "HMConnectionError",
    "HMError",
    "HMErrorItem",
    "HMInterrupted",
    "HMServerError",
    "HMTimeout",
    "InMemoryTokenStore",
    "InvalidResponseError",
    "NotFoundError",
    "PermanentError",
    "PrivateKeyAuth",
    "RateLimited",
    "ServiceAccountAuth",
    "Token",
    "TokenStore",
    "TransientError",
    "UnprocessableError",
    "VehicleAccessToken",
    "VehicleUnreachable",
    "__version__",
    "audience",
    "default_user_agent",
    "error_for_status",
    "from_vehicle_data_brand",
    "load_ec_private_key",
    "parse_error_items",
    "parse_hm_datetime",
    "to_vehicle_data_brand",
]
