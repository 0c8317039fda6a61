"""The fleet manager's core journey in Chromium against the production build: log in, add a
vehicle and watch it reach Approved without reloading, import a CSV and watch its vehicles reach
Approved, read the vehicle's telemetry after a refresh, defleet it (Revoked, live), export the
fleet as CSV; and every static file the pages reference answers 200 under its hashed name.

Nothing here touches the database: data comes from the server's management commands, status
changes from its Celery workers, beat and simulator. VINs are new on every run, so the journey
can run again against the same server.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.acceptance.conftest import STATIC_URL
from vehicles.validation import vin_check_digit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Approval and removal take SIMULATOR_APPROVAL/REMOVAL_DELAY_SECONDS (5 s) plus the simulator's
# 2 s tick, a webhook and the page's poll; the rest is slack for a busy 2-core machine.
LIVE_TIMEOUT_MS = 90_000
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}(\.[^./]+)?$")
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)""")
# Pages whose static files are checked (the journey's own pages are added to these).
PAGES = [
    "/fleet/",
    "/fleet/add/",
    "/imports/",
    "/telemetry/map/",
    "/credentials/",
    "/members/",
    "/admin/",
    "/admin/vehicles/vehicle/",
]
NOT_FOUND_PAGE = "/fleet/no-such-page/"


def new_vins(count: int) -> tuple[str, list[str]]:
    """`count` VINs sharing a random 8-digit serial (searchable), each with a valid check digit."""
    serial = f"{secrets.randbelow(10**8):08d}"
    vins = []
    for n in range(count):
        draft = f"2HMACPT{n}0{serial}"
        vins.append(draft[:8] + vin_check_digit(draft) + draft[9:])
    return serial, vins


def mark_document(page) -> None:
    page.evaluate("window.__sameDocument = 'not reloaded'")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__sameDocument") == "not reloaded"


def test_fleet_manager_journey(page, base_url, artifacts):
    from playwright.sync_api import expect

    serial, vins = new_vins(4)
    added, imported = vins[0], vins[1:]

    # Add a vehicle: the detail page shows Approved by itself once the simulator approved it.
    page.click("a:has-text('Add a vehicle')")
    page.fill("#id_vin", added)
    expect(page.locator("#vin-feedback")).to_contain_text("valid VIN")
    page.select_option("#id_brand", "sandbox")
    page.fill("#id_nickname", "Acceptance van")
    page.click("#add-submit")
    page.wait_for_url(re.compile(r"/fleet/[0-9a-f-]{36}/$"))
    detail_url = page.url
    mark_document(page)
    badge = page.locator("#vehicle-status-badge")
    expect(badge).to_have_text("Approved", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    page.screenshot(path=str(artifacts / "1-added-approved.png"), full_page=True)

    # Import a CSV: preview, confirm, done; its vehicles reach Approved on the fleet page.
    page.goto(f"{base_url}/fleet/")
    page.click("a:has-text('Import CSV')")
    rows = "".join(f"{vin},sandbox,Imported {n}\n" for n, vin in enumerate(imported, 1))
    page.set_input_files(
        "#id_file",
        files=[
            {
                "name": f"acceptance-{serial}.csv",
                "mimeType": "text/csv",
                "buffer": ("vin,brand,nickname\n" + rows).encode(),
            }
        ],
    )
    page.click("button:has-text('Upload and check')")
    job = page.locator("#job-status")
    expect(job.locator("h2")).to_have_text("Preview", timeout=LIVE_TIMEOUT_MS)
    expect(job).to_contain_text(f"{len(imported)} vehicle rows")
    page.click(f"button:has-text('Import {len(imported)} new vehicles')")
    expect(job.locator("h2")).to_have_text("Import finished", timeout=LIVE_TIMEOUT_MS)
    expect(job).to_contain_text(f"{len(imported)} vehicles added")
    expect(job).to_contain_text(f"{len(imported)} clearance requests queued")
    page.goto(f"{base_url}/fleet/?q={serial}")
    statuses = page.locator("#fleet-table tbody tr .status")
    expect(statuses).to_have_count(len(vins))
    mark_document(page)
    for vin in imported:
        row = page.locator(f"#fleet-table tbody tr:has(a:text-is('{vin}'))")
        expect(row.locator(".status")).to_have_text("Approved", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    page.screenshot(path=str(artifacts / "2-imported-approved.png"), full_page=True)

    # Telemetry on the vehicle page: Refresh asks the simulator, the panel shows the answer.
    page.goto(detail_url)
    panel = page.locator("#telemetry-live")
    panel.get_by_role("button", name="Refresh").click()
    expect(panel.locator(".telemetry-status-ok")).to_be_visible(timeout=LIVE_TIMEOUT_MS)
    expect(panel.locator(".telemetry-field").nth(7)).to_be_visible()
    expect(panel.locator(".telemetry-map.leaflet-container")).to_be_visible()
    page.screenshot(path=str(artifacts / "3-telemetry.png"), full_page=True)

    # Defleet through the dialog: Revoking, then Revoked, live.
    page.click("#defleet-open")
    expect(page.locator("#defleet-dialog")).to_be_visible()
    mark_document(page)
    page.click("#defleet-confirm")
    expect(badge).to_have_text("Revoking", timeout=LIVE_TIMEOUT_MS)
    expect(badge).to_have_text("Revoked", timeout=LIVE_TIMEOUT_MS)
    assert_not_reloaded(page)
    page.screenshot(path=str(artifacts / "4-revoked.png"), full_page=True)

    # Export what the search finds, as a CSV download.
    page.goto(f"{base_url}/fleet/?q={serial}")
    with page.expect_download() as download_info:
        page.click("#export-link")
    download = download_info.value
    assert download.suggested_filename.endswith(f"search-{serial}.csv")
    exported = artifacts / download.suggested_filename
    download.save_as(exported)
    exported_rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8-sig"))))
    assert {row["vin"]: row["status"] for row in exported_rows} == {
        added: "revoked",
        **dict.fromkeys(imported, "approved"),
    }
    assert {row["nickname"] for row in exported_rows} == {
        "Acceptance van",
        *(f"Imported {n}" for n in range(1, len(imported) + 1)),
    }


def manifest_files(static_manifest: Path | None) -> set[str] | None:
    if static_manifest is None:
        return None
    return set(json.loads(static_manifest.read_text())["paths"].values())


def check_static_file(page, url: str, manifest: set[str] | None) -> list[str]:
    """One static file: 200, hashed name, cached for good, in the manifest. Its problems."""
    path = urlsplit(url).path
    name = path.removeprefix(STATIC_URL)
    response = page.request.get(url)
    problems = []
    if response.status != 200:
        problems.append(f"{response.status} {path}")
    if not HASHED_NAME.search(name):
        problems.append(f"{path} is not a hashed name")
    elif "immutable" not in response.headers.get("cache-control", ""):
        problems.append(f"{path} is not cached as immutable: {response.headers}")
    if manifest is not None and name not in manifest:
        problems.append(f"{path} is not in the static manifest")
    if response.ok and name.endswith(".css"):
        for ref in CSS_URL.findall(response.text()):
            if not ref.startswith(("data:", "#")):
                problems += check_static_file(page, urljoin(url, ref), manifest)
    return problems


def asset_urls(page) -> set[str]:
    return set(
        page.eval_on_selector_all(
            "link[href], script[src], img[src]", "els => els.map(e => e.href || e.src)"
        )
    )


def test_every_static_file_the_pages_reference(page, base_url, static_manifest):
    manifest = manifest_files(static_manifest)
    referenced: set[str] = set()
    vehicle = page.locator("#fleet-table tbody tr a.mono").first.get_attribute("href")
    for path in [*PAGES, vehicle]:
        page.goto(urljoin(base_url, path))
        page.wait_for_load_state("networkidle")
        referenced |= asset_urls(page)
    # The 404 page uses the site layout too (the browser logs the 404 itself as an error).
    page.goto(urljoin(base_url, NOT_FOUND_PAGE))
    referenced |= asset_urls(page)
    not_found = urljoin(base_url, NOT_FOUND_PAGE)
    page.problems[:] = [p for p in page.problems if not (p.startswith(not_found) and "404" in p)]
    page.context.clear_cookies()
    page.goto(f"{base_url}/login/")
    referenced |= asset_urls(page)
    static = {
        url
        for url in referenced | page.traffic.static_requested
        if url.startswith(base_url + STATIC_URL)
    }
    assert len(static) >= 10, sorted(static)
    problems = [p for url in sorted(static) for p in check_static_file(page, url, manifest)]
    assert not problems, "\n".join(problems)
    not_ok = {url: status for url, status in page.traffic.static.items() if status != 200}
    assert not not_ok, not_ok
