"""Schemas: the single source of truth for table columns and the Zarr layout."""

from facerec.schemas.tables import (
    FEATURE_INDEX,
    IDENTITIES,
    LANDMARKS,
    LAYOUT_VERSION,
    SAMPLES,
    STATUS_OK,
    check_table_schema,
    table_schema,
)
from facerec.schemas.zarr_layout import NUM_HEATMAP_GROUPS, FeatureLayout, feature_set_name

__all__ = [
    "FEATURE_INDEX", "IDENTITIES", "LANDMARKS", "LAYOUT_VERSION", "SAMPLES", "STATUS_OK",
    "NUM_HEATMAP_GROUPS", "FeatureLayout", "check_table_schema", "feature_set_name", "table_schema",
]
