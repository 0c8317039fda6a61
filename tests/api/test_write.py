"""POST /vehicles and /vehicles/defleet: scope, per-item answers, the pages' words, retries."""

import json
import threading

import pytest
from django.db import connection

from api.models import IdempotentRequest
from clearance.models import Clearance, ClearanceStatus
from clearance.statuses import NOT_DEFLEETABLE_WORDS
from tests.api.conftest import ApiClient, vin
from tests.factories import ClearanceFactory, CredentialFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def test_read_scope_cannot_write(reader, credential):
    for path, body in (
        ("/api/v1/vehicles", {"vehicles": [{"vin": vin(1), "brand": "vw"}]}),
        ("/api/v1/vehicles/defleet", {"vins": [vin(1)]}),
    ):
        response = reader.post(path, body)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "insufficient_scope"
    assert not Vehicle.objects.exists()


def test_batch_is_answered_per_item_with_the_import_rules(writer, organization, credential):
    VehicleFactory(organization=organization, vin=vin(9))
    body = {
        "vehicles": [
            {
                "vin": vin(1).lower(),
                "brand": "VW",
                "tags": "team=vans; depot=berlin",
                "odometer_km": 12000,
            },
            {"vin": vin(2), "brand": "Volkswagon"},
            {"vin": vin(3), "brand": "bmw", "license_plate": "X" * 21},
            {"vin": vin(1), "brand": "vw"},
            {"vin": vin(9), "brand": "vw"},
            {"vin": "WVWZZZ1KZO0000001", "brand": "vw"},
            {"vin": vin(4), "brand": "bmw", "tags": {"depot": "hamburg"}},
        ]
    }
    response = writer.post("/api/v1/vehicles", body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["created"], answer["refused"]) == (2, 5)
    items = answer["items"]
    assert items[0]["result"] == "created", items[0]
    assert items[0]["vehicle"]["tags"] == {"team": "vans", "depot": "berlin"}
    assert items[0]["vehicle"]["odometer_km"] == 12000
    assert items[0]["vehicle"]["clearance"]["status"] == "queued"
    assert "Did you mean Volkswagen?" in items[1]["errors"][0]["message"]
    assert items[1]["errors"][0]["field"] == "vehicles[1].brand"
    assert "at most 20 are allowed" in items[2]["errors"][0]["message"]
    assert (
        items[3]["errors"][0]["message"]
        == f"The VIN {vin(1)} already appears in item 0 of this batch."
    )
    assert items[4]["errors"][0]["message"] == f"{vin(9)} is already in your fleet."
    assert "never use I, O or Q" in items[5]["errors"][0]["message"]
    assert items[6]["vehicle"]["tags"] == {"depot": "hamburg"}
    assert set(Vehicle.objects.values_list("vin", flat=True)) == {vin(1), vin(4), vin(9)}
    assert (
        Clearance.objects.filter(status=ClearanceStatus.QUEUED, credential=credential).count() == 2
    )


def test_more_than_1000_is_refused_whole(writer, credential):
    body = {"vehicles": [{"vin": vin(i), "brand": "vw"} for i in range(1001)]}
    response = writer.post("/api/v1/vehicles", body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_items"
    assert not Vehicle.objects.exists()


def test_malformed_body_is_400_in_the_error_shape(writer, credential):
    response = writer.client.post(
        "/api/v1/vehicles", "{not json", content_type="application/json", headers=writer.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    response = writer.post("/api/v1/vehicles", {"vehicles": [{"brand": "vw"}]})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "vehicles[0].vin"


def test_without_an_hm_application_nothing_is_added(writer, organization):
    response = writer.post("/api/v1/vehicles", {"vehicles": [{"vin": vin(1), "brand": "vw"}]})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "no_hm_application"
    assert not Vehicle.objects.exists()


def test_several_applications_need_a_choice(writer, organization, credential):
    second = CredentialFactory(organization=organization, name="Second app")
    body = {"vehicles": [{"vin": vin(1), "brand": "vw"}]}
    assert writer.post("/api/v1/vehicles", body).status_code == 400
    response = writer.post("/api/v1/vehicles", {**body, "hm_application": str(second.public_id)})
    assert response.status_code == 200
    assert Clearance.objects.get().credential == second


def test_another_organizations_application_is_refused(writer, other_organization, credential):
    theirs = CredentialFactory(organization=other_organization)
    body = {"vehicles": [{"vin": vin(1), "brand": "vw"}], "hm_application": str(theirs.public_id)}
    assert writer.post("/api/v1/vehicles", body).status_code == 400
    assert not Vehicle.objects.exists()


def test_same_vin_in_two_organizations(
    writer, other_writer, organization, other_organization, credential
):
    CredentialFactory(organization=other_organization)
    body = {"vehicles": [{"vin": vin(1), "brand": "vw"}]}
    assert writer.post("/api/v1/vehicles", body).json()["created"] == 1
    assert other_writer.post("/api/v1/vehicles", body).json()["created"] == 1
    assert Vehicle.objects.filter(vin=vin(1)).count() == 2


def test_a_retry_with_the_same_key_adds_nothing_and_answers_the_same(writer, credential):
    body = {"vehicles": [{"vin": vin(i), "brand": "vw"} for i in range(5)]}
    first = writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "batch-1"})
    again = writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Vehicle.objects.count() == 5
    # Without a key the same batch is answered item by item as duplicates.
    plain = writer.post("/api/v1/vehicles", body).json()
    assert plain["created"] == 0 and plain["refused"] == 5


def test_a_key_reused_for_another_body_is_refused(writer, credential):
    writer.post(
        "/api/v1/vehicles",
        {"vehicles": [{"vin": vin(1), "brand": "vw"}]},
        **{"Idempotency-Key": "k"},
    )
    response = writer.post(
        "/api/v1/vehicles",
        {"vehicles": [{"vin": vin(2), "brand": "vw"}]},
        **{"Idempotency-Key": "k"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not Vehicle.objects.filter(vin=vin(2)).exists()


def test_a_failed_request_keeps_no_key(writer, organization):
    body = {"vehicles": [{"vin": vin(1), "brand": "vw"}]}
    assert writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "k"}).status_code == 422
    assert not IdempotentRequest.objects.exists()
    CredentialFactory(organization=organization)
    assert writer.post("/api/v1/vehicles", body, **{"Idempotency-Key": "k"}).json()["created"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_add_once(organization, write_token, credential):
    body = {"vehicles": [{"vin": vin(i), "brand": "vw"} for i in range(50)]}
    answers = []

    def send():
        client = ApiClient(write_token[1])
        answers.append(client.post("/api/v1/vehicles", body, **{"Idempotency-Key": "same"}).json())
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4
    assert all(answer == answers[0] for answer in answers), json.dumps(answers)[:500]
    assert answers[0]["created"] == 50
    assert Vehicle.objects.count() == 50


def _cleared(organization, credential, n, status):
    vehicle = VehicleFactory(organization=organization, vin=vin(n))
    ClearanceFactory(vehicle=vehicle, credential=credential, status=status)
    return vehicle


def test_defleet_per_item_with_the_pages_words(
    writer, organization, other_organization, credential, monkeypatch
):
    queued = []
    monkeypatch.setattr(
        "clearance.services.defleet.queue_defleet",
        lambda ids, actor=None: queued.append(list(ids)) or len(ids),
    )
    approved = _cleared(organization, credential, 1, ClearanceStatus.APPROVED)
    pending = _cleared(organization, credential, 2, ClearanceStatus.PENDING)
    _cleared(organization, credential, 3, ClearanceStatus.REVOKED)
    VehicleFactory(organization=organization, vin=vin(4))
    VehicleFactory(organization=other_organization, vin=vin(5))
    response = writer.post(
        "/api/v1/vehicles/defleet", {"vins": [vin(1), vin(2), vin(3), vin(4), vin(5), "nonsense"]}
    )
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["refused"]) == (2, 4)
    results = [(i["result"], i["status"]) for i in answer["items"]]
    assert results == [
        ("accepted", "approved"),
        ("accepted", "pending"),
        ("refused", "revoked"),
        ("refused", "none"),
        ("not_found", "none"),
        ("not_found", "none"),
    ]
    assert answer["items"][2]["message"] == NOT_DEFLEETABLE_WORDS["revoked"]
    assert answer["items"][3]["message"] == "No clearance was ever requested for this vehicle."
    assert queued == [[approved.pk, pending.pk]]


def test_defleet_retry_with_key_queues_once(writer, organization, credential, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "clearance.services.defleet.queue_defleet",
        lambda ids, actor=None: queued.append(list(ids)) or len(ids),
    )
    _cleared(organization, credential, 1, ClearanceStatus.APPROVED)
    for _ in range(3):
        response = writer.post(
            "/api/v1/vehicles/defleet", {"vins": [vin(1)]}, **{"Idempotency-Key": "d1"}
        )
        assert response.json()["accepted"] == 1
    assert len(queued) == 1


def test_answers_to_retries_are_kept_a_day(writer, credential):
    from datetime import timedelta

    from django.utils import timezone

    from api.tasks import purge_idempotency_keys

    writer.post(
        "/api/v1/vehicles",
        {"vehicles": [{"vin": vin(1), "brand": "vw"}]},
        **{"Idempotency-Key": "old"},
    )
    writer.post(
        "/api/v1/vehicles",
        {"vehicles": [{"vin": vin(2), "brand": "vw"}]},
        **{"Idempotency-Key": "new"},
    )
    IdempotentRequest.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert purge_idempotency_keys() == 1
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["new"]
