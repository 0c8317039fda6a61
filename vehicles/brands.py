"""HM fleet brand slugs for forms and filters (the 28 values of the fleet clearance spec)."""

from clearance.hm.types import BRAND_LABELS

BRAND_CHOICES = sorted(BRAND_LABELS.items(), key=lambda item: item[1].lower())

__all__ = ["BRAND_CHOICES", "BRAND_LABELS"]
