import factory
from django.contrib.auth import get_user_model

from clearance.models import Clearance, Credential
from organizations.models import Membership, Organization, Role
from vehicles.models import Vehicle


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Fleet {n}")
    slug = factory.Sequence(lambda n: f"fleet-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery staple")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.OWNER


def _vin(n: int) -> str:
    # 17 characters, no I/O/Q.
    return f"WVWZZZ1KZ{n:08d}"


class VehicleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vehicle

    organization = factory.SubFactory(OrganizationFactory)
    vin = factory.Sequence(_vin)
    brand = "volkswagen"


class CredentialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Credential

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"HM app {n}")
    environment = Credential.Environment.SIMULATOR
    auth_mode = Credential.AuthMode.CLIENT_SECRET
    client_id = factory.Faker("uuid4")
    client_secret = "not-a-real-secret"
    webhook_secret = "webhook-secret"


class ClearanceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clearance

    vehicle = factory.SubFactory(VehicleFactory)
    credential = factory.SubFactory(
        CredentialFactory, organization=factory.SelfAttribute("..vehicle.organization")
    )
