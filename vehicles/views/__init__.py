"""The fleet pages: the overview and bulk actions (``fleet``), one vehicle (``vehicle``)."""
