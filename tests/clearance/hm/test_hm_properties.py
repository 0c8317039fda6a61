"""Whatever HM sends, parsing never crashes (hypothesis)."""

from hypothesis import given
from hypothesis import strategies as st

from clearance.hm import (
    ClearanceResult,
    ClearanceStatus,
    Eligibility,
    FleetVehicle,
    HMError,
    error_for_status,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_status_parse_never_fails(raw):
    status = ClearanceStatus.parse(raw)
    assert isinstance(status, str)
    assert status.is_known == (status in ClearanceStatus.KNOWN)


@given(
    st.integers(min_value=300, max_value=599),
    json_values,
    st.dictionaries(st.sampled_from(["Retry-After", "X-Request-Id"]), st.text(max_size=20)),
)
def test_error_for_status_never_fails(status, body, headers):
    error = error_for_status(status, body, headers=headers)
    assert isinstance(error, HMError) and error.message and error.status_code == status


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "vin",
                "status",
                "brand",
                "tags",
                "changelog",
                "description",
                "data_delivery",
                "eligible",
            ]
        ),
        json_values,
    )
)
def test_result_parsing_never_fails(data):
    FleetVehicle.from_json(data)
    ClearanceResult.from_json(data)
    Eligibility.from_json(data)
