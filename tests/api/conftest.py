import pytest
from django.test import Client

from api.models import Scope
from api.tokens import create_token
from tests.factories import CredentialFactory


class ApiClient:
    """A test client that sends a bearer token and JSON."""

    def __init__(self, token_text: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token_text}"} if token_text else {}

    def get(self, path, params=None, **headers):
        return self.client.get(path, params or {}, headers={**self.headers, **headers})

    def post(self, path, body, **headers):
        return self.client.post(
            path, body, content_type="application/json", headers={**self.headers, **headers}
        )


@pytest.fixture
def credential(organization):
    return CredentialFactory(organization=organization, name="Main app")


@pytest.fixture
def read_token(organization, owner_user):
    return create_token(organization, name="Warehouse", scope=Scope.READ, by=owner_user)


@pytest.fixture
def write_token(organization, owner_user):
    return create_token(organization, name="FMS", scope=Scope.WRITE, by=owner_user)


@pytest.fixture
def reader(read_token):
    return ApiClient(read_token[1])


@pytest.fixture
def writer(write_token):
    return ApiClient(write_token[1])


@pytest.fixture
def other_writer(other_organization, user_factory):
    return ApiClient(create_token(other_organization, name="Theirs", scope=Scope.WRITE)[1])


def vin(n: int) -> str:
    return f"WVWZZZ1KZ{n:08d}"
