"""Shared by simulator, client-over-HTTP and contract tests."""

from clearance.hm import ClientSecretAuth, HMClient, PrivateKeyAuth, ServiceAccountAuth

AUTH_MODES = ("client_secret", "private_key", "service_account")


def auth_for(mode: str, secrets):
    if mode == "client_secret":
        return ClientSecretAuth(secrets.client_id, secrets.client_secret)
    if mode == "private_key":
        return PrivateKeyAuth.from_console_json(secrets.client_id, secrets.console_key_json())
    if mode == "service_account":
        return ServiceAccountAuth(
            secrets.service_account_key_id,
            secrets.service_account_private_key_pem,
            client_id=secrets.client_id,
            client_secret=secrets.client_secret,
        )
    raise ValueError(mode)


def simulator_client(base_url: str, secrets, mode: str = "client_secret", **kwargs) -> HMClient:
    kwargs.setdefault("timeout", (2, 10))
    return HMClient(f"{base_url}/simulator", auth_for(mode, secrets), **kwargs)
