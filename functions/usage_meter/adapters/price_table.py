"""The price table file (configuration, shipped with the functions; see config/prices.json)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from usage_meter.models.billing import PriceTable

# Relative paths are resolved against the directory holding the usage_meter package: /var/task
# in Lambda, functions/ in a checkout.
CODE_ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=4)
def load_price_table(path: str) -> PriceTable:
    file = Path(path) if Path(path).is_absolute() else CODE_ROOT / path
    return PriceTable.model_validate_json(file.read_bytes())
