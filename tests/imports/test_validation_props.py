"""Property-based tests for the shared VIN and brand parsers (vehicles/validation.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vehicles.brands import BRAND_LABELS
from vehicles.validation import (
    FLEET_BRANDS,
    InvalidValue,
    check_digit_applies,
    normalize_vin,
    parse_brand,
    vin_check_digit,
    vin_check_digit_ok,
)

VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
vins = st.text(alphabet=VIN_ALPHABET, min_size=17, max_size=17)


@given(vins, st.sampled_from(["", " ", "\t", "  \n"]), st.booleans())
def test_valid_vins_normalise_to_upper_case_without_surrounding_space(vin, pad, lower):
    value = pad + (vin.lower() if lower else vin) + pad
    normalized, warnings = normalize_vin(value)
    assert normalized == vin
    assert bool(warnings) == (check_digit_applies(vin) and not vin_check_digit_ok(vin))


@given(vins)
def test_a_vin_with_the_right_check_digit_has_no_warning(vin):
    fixed = vin[:8] + vin_check_digit(vin) + vin[9:]
    assert vin_check_digit(fixed) == vin_check_digit(vin)  # position 9 has weight 0
    assert normalize_vin(fixed) == (fixed, [])


@given(vins, st.integers(0, 16), st.sampled_from("IOQioq"))
def test_i_o_q_are_always_rejected(vin, position, letter):
    with pytest.raises(InvalidValue, match="never use I, O or Q"):
        normalize_vin(vin[:position] + letter + vin[position + 1 :])


@given(st.text(alphabet=VIN_ALPHABET, max_size=40).filter(lambda v: len(v) != 17))
def test_wrong_length_is_rejected_with_the_length(text):
    with pytest.raises(InvalidValue) as excinfo:
        normalize_vin(text)
    message = str(excinfo.value)
    assert "missing" in message if not text else f"has {len(text)} characters" in message


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=30), st.none(), st.integers()))
def test_normalize_vin_never_crashes_on_arbitrary_input(value):
    try:
        vin, warnings = normalize_vin(value)
    except InvalidValue as exc:
        assert str(exc)  # always a message for the user
    else:
        assert len(vin) == 17 and set(vin) <= set(VIN_ALPHABET)
        assert isinstance(warnings, list)


def test_known_check_digits():
    assert vin_check_digit_ok("1M8GDM9AXKP042788")  # the classic textbook example
    assert vin_check_digit_ok("11111111111111111")
    assert not vin_check_digit_ok("1M8GDM9A1KP042788")
    assert not vin_check_digit_ok("not a vin")


def _random_case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(text, flips, strict=False))


@given(
    st.sampled_from(FLEET_BRANDS),
    st.lists(st.booleans(), min_size=20, max_size=20),
    st.sampled_from(["", " ", "\t"]),
)
def test_every_slug_parses_to_itself_in_any_case(slug, flips, pad):
    assert parse_brand(pad + _random_case(slug, flips) + pad) == slug


@pytest.mark.parametrize(
    ("written", "slug"),
    [
        ("Mercedes-Benz", "mercedes-benz"),
        ("Mercedes", "mercedes-benz"),
        ("MERCEDES BENZ", "mercedes-benz"),
        ("VW", "volkswagen"),
        ("Volkswagen", "volkswagen"),
        ("Citroën", "citroen"),
        ("CITROEN", "citroen"),
        ("Alfa Romeo", "alfaromeo"),
        ("alfa-romeo", "alfaromeo"),
        ("Volvo", "volvo-cars"),
        ("Volvo Cars", "volvo-cars"),
        ("Škoda", "skoda"),
        ("DS Automobiles", "ds"),
        ("sandbox", "sandbox"),
    ],
)
def test_common_spellings(written, slug):
    assert parse_brand(written) == slug


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_parse_brand_returns_a_fleet_slug_or_lists_the_valid_ones(text):
    try:
        slug = parse_brand(text)
    except InvalidValue as exc:
        assert "Alfa Romeo, Audi, BMW, Citroën" in str(exc) and "Sandbox" in str(exc)
    else:
        assert slug in FLEET_BRANDS


def test_unknown_brand_names_the_value_and_lists_valid_brands():
    with pytest.raises(InvalidValue) as excinfo:
        parse_brand("Trabant")
    assert "“Trabant” is not a brand" in str(excinfo.value)
    assert len(FLEET_BRANDS) == 28
    assert all(BRAND_LABELS[slug] in str(excinfo.value) for slug in FLEET_BRANDS)


def test_unknown_brand_lists_names_people_know_not_hm_slugs():
    with pytest.raises(InvalidValue) as excinfo:
        parse_brand("Trabant")
    message = str(excinfo.value)
    assert "Alfa Romeo, Audi, BMW, Citroën, CUPRA" in message and "Volvo Cars" in message
    assert "Škoda, Tesla" in message  # alphabetical as people read it, not by code point
    for slug in ("alfaromeo", "volvo-cars", "mercedes-benz", "citroen"):
        assert slug not in message
    assert "Did you mean" not in message  # nothing is close to Trabant


@pytest.mark.parametrize(
    ("written", "suggested"),
    [
        ("Volkswagon", "Volkswagen"),
        ("Mercedez", "Mercedes-Benz"),
        ("Peugot", "Peugeot"),
        ("Renualt", "Renault"),
        ("Porshe", "Porsche"),
        ("Alfa-Romero", "Alfa Romeo"),
        ("Volvo Car Corp", "Volvo Cars"),
        ("Opel Astra", "Opel"),
        ("BMW i3", "BMW"),
        ("Skoda Auto", "Škoda"),
    ],
)
def test_unknown_brand_suggests_the_closest_one(written, suggested):
    with pytest.raises(InvalidValue) as excinfo:
        parse_brand(written)
    assert f"“{written}” is not a brand High Mobility supports. Did you mean {suggested}? " in str(
        excinfo.value
    )


@pytest.mark.parametrize("written", ["x", "ab", "Trabant", "Lada", "12345"])
def test_no_suggestion_when_nothing_is_close(written):
    with pytest.raises(InvalidValue) as excinfo:
        parse_brand(written)
    assert "Did you mean" not in str(excinfo.value)
