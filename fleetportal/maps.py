"""Map tiles: OpenStreetMap's standard tiles unless the operator says otherwise.

``MAP_TILE_URL`` / ``MAP_TILE_ATTRIBUTION`` unset: OpenStreetMap with its required attribution.
``MAP_TILE_URL`` set empty: no tiles at all (a plain grid; nothing loaded from a third party).
"""

from fleetportal.env import _raw

OSM_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
OSM_ATTRIBUTION = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)


def tile_settings() -> tuple[str, str]:
    """(MAP_TILE_URL, MAP_TILE_ATTRIBUTION) from the environment, with OpenStreetMap's default."""
    url = _raw("MAP_TILE_URL")
    url = OSM_TILE_URL if url is None else url
    attribution = _raw("MAP_TILE_ATTRIBUTION")
    if attribution is None or (attribution == "" and url == OSM_TILE_URL):
        attribution = OSM_ATTRIBUTION if url == OSM_TILE_URL else ""
    return url, attribution
