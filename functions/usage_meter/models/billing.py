"""Billing models: monthly aggregates as read back, the price table, export rows and manifests."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from usage_meter.models.usage import Product


class UsageAggregate(BaseModel):
    """A customer's usage in one month for one product x project x model x dimensions."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    month: str
    product: Product
    project: str
    model: str
    dimensions: dict[str, str] = Field(default_factory=dict)
    usage_count: int
    billable_seconds: Decimal
    addon_seconds: dict[str, Decimal] = Field(default_factory=dict)


class ProductPrices(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: dict[str, Decimal]
    add_ons: dict[str, Decimal] = Field(default_factory=dict)


class PriceVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    version: str = Field(min_length=1)
    effective_from: date
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    async_: ProductPrices = Field(alias="async")
    streaming: ProductPrices

    def prices(self, product: Product) -> ProductPrices:
        return self.async_ if product == "async" else self.streaming


class PriceTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1]
    description: str = ""
    versions: list[PriceVersion] = Field(min_length=1)

    def for_month(self, month: str) -> PriceVersion | None:
        """The version in force on the first day of ``month`` (the latest effective_from), or
        None before the first version: rows are then exported unpriced, never guessed."""
        first_day = date.fromisoformat(f"{month}-01")
        candidates = [v for v in self.versions if v.effective_from <= first_day]
        return max(candidates, key=lambda v: v.effective_from) if candidates else None


class ExportRow(BaseModel):
    """One billing line: customer x product x project x model x dimensions, priced once."""

    model_config = ConfigDict(frozen=True)

    month: str
    customer_id: str
    product: Product
    project: str
    model: str
    dimensions: str
    usage_count: int
    billable_seconds: Decimal
    billable_hours: Decimal
    price_per_hour: Decimal | None
    add_on_seconds: str
    cost: Decimal | None
    currency: str
    price_version: str
    unpriced: str
