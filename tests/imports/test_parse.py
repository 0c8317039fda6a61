"""The streaming reader and row validator: formats, headers, rows, and a corpus of bad files."""

from __future__ import annotations

import io
import os
import tracemalloc

import pytest

from imports.parse import CsvFileError, open_fleet_csv
from imports.rows import RowValidator
from tests.imports.helpers import GeneratedCsv, fleet_csv, make_vin
from vehicles.validation import InvalidValue, parse_odometer, parse_tags

GOOD_VIN = "1M8GDM9AXKP042788"  # valid check digit
OTHER_VIN = "WBADT43452G296403"


def read(data: bytes):
    """(layout, [VehicleRow]) for ``data``; raises CsvFileError like the real import."""
    csv_file = open_fleet_csv(io.BytesIO(data))
    validator = RowValidator(csv_file.layout)
    rows = [validator.validate(raw) for raw in csv_file.rows()]
    return csv_file.layout, rows  # the layout's encoding is final once every row was read


def file_error(data: bytes) -> str:
    with pytest.raises(CsvFileError) as excinfo:
        read(data)
    return str(excinfo.value)


# -- formats ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("encoding", "prefix", "label"),
    [
        ("utf-8", b"", "UTF-8"),
        ("utf-8", b"\xef\xbb\xbf", "UTF-8 with BOM"),
        ("utf-16", b"", "UTF-16"),  # Python's utf-16 codec writes a BOM
        ("utf-16-be", b"\xfe\xff", "UTF-16"),
        ("cp1252", b"", "Windows-1252"),  # Excel's plain "CSV" in Western Europe
    ],
)
@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_encodings_newlines_and_delimiters(encoding, prefix, label, newline, delimiter):
    text = newline.join(
        [
            delimiter.join(["VIN", "Brand", "Licence plate", "Nickname"]),
            delimiter.join([GOOD_VIN, "Citroën", "AB-123", "Zoë’s van"]),
            "",
            delimiter.join([OTHER_VIN.lower(), "bmw", "", ""]),
        ]
    )
    layout, rows = read(prefix + text.encode(encoding))
    assert layout.encoding_label == label
    assert layout.delimiter == delimiter
    assert [(r.row, r.vin, r.brand) for r in rows] == [
        (2, GOOD_VIN, "citroen"),
        (4, OTHER_VIN, "bmw"),
    ]
    assert rows[0].nickname == "Zoë’s van"
    assert all(r.ok for r in rows)


def test_header_variants_and_unknown_columns():
    data = (
        b"Colour, Make ,LICENCE PLATE,Name,Tag,Mileage (km),V.I.N.\n"
        b"red,VW,X1,Bob,a=b,12,1M8GDM9AXKP042788\n"
    )
    layout, rows = read(data)
    assert layout.unknown_columns == ("Colour",)
    assert layout.labels["brand"] == "Make"
    assert layout.labels["vin"] == "V.I.N."
    (row,) = rows
    assert (row.vin, row.brand, row.license_plate, row.nickname, row.tags, row.odometer_km) == (
        GOOD_VIN,
        "volkswagen",
        "X1",
        "Bob",
        {"a": "b"},
        12,
    )


def test_two_columns_for_the_same_field_are_refused():
    assert "both mean license_plate" in file_error(b"vin,brand,plate,licence plate\n")


def test_missing_required_column_is_named():
    message = file_error(b"vin,plate\n1M8GDM9AXKP042788,X\n")
    assert "brand is missing" in message and "“vin”, “plate”" in message


def test_quoted_delimiters_and_newlines_stay_in_the_cell():
    data = (
        "vin,brand,nickname,tags\n"
        '1M8GDM9AXKP042788,bmw,"Van, the big one\nsecond line","a=1;b=x,y"\n'
        f"{OTHER_VIN},bmw,plain,\n"
    ).encode()
    _, rows = read(data)
    assert rows[0].nickname == "Van, the big one\nsecond line"
    assert rows[0].tags == {"a": "1", "b": "x", "y": ""}  # commas separate tags, as in forms
    assert rows[1].row == 3  # a spreadsheet row, not a physical line


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ("cost=A12;depot=north", {"cost": "A12", "depot": "north"}),
        ("cost=A12,depot=north", {"cost": "A12", "depot": "north"}),
        ("cost=A12, depot=north; team=B", {"cost": "A12", "depot": "north", "team": "B"}),
        ("note=x,y", {"note": "x", "y": ""}),  # bare tags, as the forms accept them
        ("vans, depot=north", {"vans": "", "depot": "north"}),
        ("a=1,,b=2,", {"a": "1", "b": "2"}),
    ],
)
def test_tags_are_separated_by_semicolons_or_commas(cell, tags):
    assert parse_tags(cell) == tags


def test_comma_separated_tags_in_a_quoted_cell_of_a_comma_file():
    data = f'vin,brand,tags\n{GOOD_VIN},bmw,"cost=A12, depot=north"\n'.encode()
    _, rows = read(data)
    assert rows[0].ok and rows[0].tags == {"cost": "A12", "depot": "north"}


def test_a_tag_without_a_name_is_an_error_in_words():
    with pytest.raises(InvalidValue, match=r"“=north” has no name.*commas or semicolons"):
        parse_tags("vans, =north")


def test_semicolon_file_with_quoted_tags():
    data = f'vin;brand;tags\n{GOOD_VIN};BMW;"cost=A12;depot=north"\n'.encode()
    _, rows = read(data)
    assert rows[0].tags == {"cost": "A12", "depot": "north"}


# -- row validation ----------------------------------------------------------------------------
def test_every_error_names_row_and_column():
    data = (
        "VIN,Make,Mileage,Tags\n"
        "TOO-SHORT,bmw,1,\n"
        f"{GOOD_VIN},Trabant,1,\n"
        f"{OTHER_VIN},bmw,12.5,\n"
        f"{make_vin(1)},bmw,-3,\n"
        f"{make_vin(2)},bmw,,=novalue\n"
        f"{GOOD_VIN},bmw,,\n"
    ).encode()
    _, rows = read(data)
    errors = [str(e) for r in rows for e in r.errors]
    assert errors[0].startswith("Row 2, VIN: The VIN “TOO-SHORT” has 9 characters")
    assert (
        errors[1].startswith("Row 3, Make: “Trabant” is not a brand") and "Volvo Cars" in errors[1]
    )
    assert errors[2].startswith("Row 4, Mileage: “12.5” is not a whole number")
    assert errors[3].startswith("Row 5, Mileage: “-3” is not a whole number")
    assert errors[4].startswith("Row 6, Tags: “=novalue” has no name before “=”")
    assert errors[5] == f"Row 7, VIN: The VIN {GOOD_VIN} already appears in row 3 of this file."


def test_check_digit_is_only_a_warning_and_only_where_it_is_mandatory():
    wrong = GOOD_VIN[:8] + "1" + GOOD_VIN[9:]  # made for North America (WMI 1): a warning
    european = make_vin(5)[:8] + "Z" + make_vin(5)[9:]  # W...: no check digit in use
    sandbox = "1HMD3W5DA8C7Y5DNA"  # HM's own sandbox VIN: made up, never warned about
    _, rows = read(f"vin,brand\n{wrong},bmw\n{european},bmw\n{sandbox},bmw\n".encode())
    assert all(row.ok for row in rows)
    assert "check digit" in str(rows[0].warnings[0])
    assert rows[1].warnings == rows[2].warnings == []


def test_extra_cells_are_a_row_error():
    _, rows = read(f"vin,brand,nickname\n{GOOD_VIN},bmw,Smith, John\n".encode())
    assert "has 4 cells but the header has 3" in str(rows[0].errors[0])


def test_values_too_long():
    _, rows = read(f"vin,brand,plate\n{GOOD_VIN},bmw,{'X' * 21}\n".encode())
    assert "at most 20 are allowed" in str(rows[0].errors[0])


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("12345", 12345), ("12 345", 12345), ("120 km", 120), ("000012345", 12345)],
)
def test_odometer(text, value):
    assert parse_odometer(text) == value


@pytest.mark.parametrize("text", ["-1", "1.5", "1e3", "abc", "12,5"])
def test_bad_odometer(text):
    with pytest.raises(InvalidValue):
        parse_odometer(text)


def test_an_absurdly_long_odometer_is_a_row_error_not_a_crash():
    # int() refuses digit strings over 4,300 characters with a ValueError of its own.
    _, rows = read(f"vin,brand,odometer_km\n{GOOD_VIN},bmw,{'9' * 5000}\n".encode())
    assert rows[0].errors[0].column == "odometer_km"
    assert "not a plausible odometer reading" in str(rows[0].errors[0])


def test_tags():
    assert parse_tags(" a = 1 ; b=2;; ") == {"a": "1", "b": "2"}
    assert parse_tags("empty=") == {"empty": ""}
    with pytest.raises(InvalidValue, match="appears twice"):
        parse_tags("a=1;a=2")
    with pytest.raises(InvalidValue, match="has no name"):
        parse_tags("=1")


# -- the corpus of bad files --------------------------------------------------------------------
def test_corpus_empty_file():
    assert "The file is empty" in file_error(b"")
    assert "The file is empty" in file_error(b"\r\n\n  \n")


def test_corpus_header_only():
    assert "header row but no vehicles" in file_error(b"vin,brand,license_plate\r\n")
    assert "header row but no vehicles" in file_error(b"vin;brand\n\n;\n;;\n")


def test_corpus_binary():
    assert "binary data" in file_error(os.urandom(2048).replace(b"P", b"\x00") + b"\x00")
    assert "binary data" in file_error(b"vin,brand\n" + bytes(range(1, 32)) * 20)


def test_corpus_excel_workbook():
    assert "Excel workbook" in file_error(b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 100)
    assert "old Excel (.xls)" in file_error(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)


def test_corpus_windows_1252_from_german_excel():
    data = "VIN;Marke;Kennzeichen;Name\r\n1M8GDM9AXKP042788;Citroën;M-ÄB 12;Chloé’s Größe €\r\n"
    layout, rows = read(data.encode("cp1252"))
    assert (layout.encoding, layout.encoding_label, layout.delimiter) == (
        "cp1252",
        "Windows-1252",
        ";",
    )
    assert (rows[0].brand, rows[0].license_plate, rows[0].nickname) == (
        "citroen",
        "M-ÄB 12",
        "Chloé’s Größe €",
    )


def test_corpus_windows_1252_far_into_the_file():
    """Plain ASCII for 2,000 rows, then the first “é”: read as Windows-1252, nothing garbled."""
    data = fleet_csv(2000) + f"{GOOD_VIN},Citroën,,Chloé,,\n".encode("latin-1")
    layout, rows = read(data)
    assert layout.encoding_label == "Windows-1252"
    assert len(rows) == 2001 and (rows[-1].brand, rows[-1].nickname) == ("citroen", "Chloé")
    assert all(row.ok for row in rows)


def test_corpus_plain_ascii_and_utf8_stay_utf8():
    assert read(fleet_csv(3))[0].encoding_label == "UTF-8"
    layout, rows = read(f"vin,brand,nickname\n{GOOD_VIN},bmw,Zoë\n".encode())
    assert layout.encoding_label == "UTF-8" and rows[0].nickname == "Zoë"


def test_corpus_utf8_mixed_with_latin1_is_refused():
    data = fleet_csv(2000) + "x,Citroën\n".encode() + "y,Chloé\n".encode("latin-1")
    with pytest.raises(CsvFileError) as excinfo:
        read(data)
    assert "not valid UTF-8" in str(excinfo.value) and excinfo.value.row is not None


def test_corpus_bytes_windows_1252_does_not_define_are_refused():
    message = file_error(b"vin;brand\n1M8GDM9AXKP042788;Citro\x81n\n")
    assert "neither UTF-8 nor Windows-1252" in message and "CSV UTF-8" in message
    far = fleet_csv(2000) + b"x,\x9d\n"
    with pytest.raises(CsvFileError, match="neither UTF-8 nor Windows-1252"):
        read(far)


def test_corpus_binary_is_still_refused_not_read_as_windows_1252():
    noise = bytes(byte for byte in range(1, 256) if byte not in b"\x81\x8d\x8f\x90\x9d") * 40
    assert "binary data" in file_error(noise)
    assert "binary data" in file_error(b"vin,brand\n" + bytes(range(256)))  # NUL bytes
    assert "Excel workbook" in file_error(b"PK\x03\x04" + b"\xe4" * 200)


def test_corpus_utf32_and_bomless_utf16():
    assert "UTF-32" in file_error("vin,brand\n".encode("utf-32"))
    assert "without a byte-order mark" in file_error("vin,brand\n".encode("utf-16-le"))


def test_corpus_one_megabyte_single_line(tmp_path):
    path = tmp_path / "one-line.csv"
    path.write_bytes(b"vin,brand," + b"x," * 500_000)
    with path.open("rb") as handle, pytest.raises(CsvFileError) as excinfo:
        open_fleet_csv(handle)
    assert "longer than 64 KB without a line break" in str(excinfo.value)


def test_corpus_one_megabyte_line_after_good_rows():
    data = fleet_csv(10) + b"A" * 1_048_576 + b"\n"
    message = file_error(data)
    assert message.startswith("Row 12 is longer than 64 KB")


def test_corpus_quote_never_closed():
    _, rows = read(
        f'vin,brand,nickname\n{GOOD_VIN},bmw,ok\n{OTHER_VIN},bmw,"never closed\n'.encode()
    )
    assert rows[0].ok
    assert "never closed" in str(rows[1].errors[0]) and rows[1].row == 3


def test_corpus_misplaced_quote_is_a_row_error_and_reading_goes_on():
    _, rows = read(f'vin,brand,nickname\n{GOOD_VIN},bmw,"a"b\n{OTHER_VIN},bmw,fine\n'.encode())
    assert "misplaced" in str(rows[0].errors[0])
    assert rows[1].ok and rows[1].row == 3


def test_corpus_formula_cells_are_kept_as_text_with_a_warning():
    data = (
        "vin,brand,nickname,license_plate\n"
        f'{GOOD_VIN},bmw,"=HYPERLINK(""http://evil"",""x"")",@SUM(A1)\n'
        f"{OTHER_VIN},bmw,'=1+2,-5\n"  # our own export's escaping is undone on import
    ).encode()
    _, rows = read(data)
    assert rows[0].ok and rows[0].nickname.startswith("=HYPERLINK(")
    assert rows[0].license_plate == "@SUM(A1)"
    assert {w.column for w in rows[0].warnings} >= {"nickname", "license_plate"}
    assert rows[1].nickname == "=1+2" and rows[1].license_plate == "-5"
    assert rows[0].errors == [] and rows[1].errors == []


def test_corpus_formula_in_vin_or_brand_is_an_error():
    _, rows = read(b"vin,brand\n=CMD|' /C calc'!A0,bmw\n1M8GDM9AXKP042788,=1+1\n")
    assert [e.column for e in rows[0].errors] == ["vin"]
    assert [e.column for e in rows[1].errors] == ["brand"]


def test_corpus_thousand_bad_rows():
    lines = ["vin,brand,odometer_km"] + [f"BAD{i},Trabant,-{i}" for i in range(1000)]
    _, rows = read("\n".join(lines).encode())
    assert len(rows) == 1000
    assert all(len(r.errors) == 3 for r in rows)
    assert {e.column for r in rows for e in r.errors} == {"vin", "brand", "odometer_km"}
    assert str(rows[-1].errors[0]).startswith("Row 1001, vin:")


def test_memory_stays_flat_for_100k_rows():
    tracemalloc.start()
    try:
        csv_file = open_fleet_csv(GeneratedCsv(10_000))  # type: ignore[arg-type]
        validator = RowValidator(csv_file.layout)
        assert sum(validator.validate(raw).ok for raw in csv_file.rows()) == 10_000
        small = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        csv_file = open_fleet_csv(GeneratedCsv(100_000))  # type: ignore[arg-type]
        validator = RowValidator(csv_file.layout)
        assert sum(validator.validate(raw).ok for raw in csv_file.rows()) == 100_000
        large = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Rows are streamed; only the duplicate index grows: 12 bytes a slot, at most ~50 bytes per
    # VIN at the moment the table doubles (a dict of VIN strings would be ~130).
    assert large < 8_000_000, large
    assert large - small < 90_000 * 50, (small, large)
