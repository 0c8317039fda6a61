"""FleetPortal's version, as sent in the HM client's User-Agent."""

__version__ = "0.1.0"
