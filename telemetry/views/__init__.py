"""Telemetry pages: the vehicle panel and its Refresh (``panel``), the fleet map and places
(``maps``), the distance report and the fleet list's columns (``fleet``); ``common`` holds what
they share. The views are named here for ``telemetry/urls.py``."""

from telemetry.views.fleet import fleet_columns_save, fleet_distance
from telemetry.views.maps import fleet_map, fleet_map_data, place_delete, places
from telemetry.views.panel import panel, refresh

__all__ = [
    "fleet_columns_save",
    "fleet_distance",
    "fleet_map",
    "fleet_map_data",
    "panel",
    "place_delete",
    "places",
    "refresh",
]
