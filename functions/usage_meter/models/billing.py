"""Billing models: monthly aggregates as read back, the price table, export rows and manifests.

The price table says what AssemblyAI's price list says (sources in ``config/prices.json``):

- a **model** has a price per hour, and may **include** add-ons in that price (e.g. prompting on
  Universal-3 Pro);
- an **add-on** has a price per hour that may **depend on the model** (keyterms prompting is free
  on Universal-2, paid on Universal-3 Pro), or no published price at all (``per_hour`` null, with
  the reason in ``unpriced_reason``): a row using it is exported unpriced, never guessed;
- a **token-priced model** (LLM Gateway) has a price per million input tokens and per million
  output tokens; a product priced by **region** names each region's multiplier of those prices
  (in-region LLM Gateway endpoints cost 10% more than global routing); a region it does not name
  leaves the row unpriced;
- a product a version does not price at all (``null``) leaves its rows unpriced with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from usage_meter.models.usage import Product

Price = Decimal  # per hour, in the version's currency


class UsageAggregate(BaseModel):
    """A customer's usage in one month for one product x project x model x dimensions, kept
    apart for estimated usage (orphaned streaming sessions billed at their bound)."""

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
    estimated: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    region: str = ""


@dataclass(frozen=True)
class LedgerTotals:
    """A customer's billable ledger rows in a month: count, seconds and tokens. The export
    checks the aggregates add up to exactly these, unit by unit."""

    usage_count: int = 0
    billable_seconds: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: LedgerTotals) -> LedgerTotals:
        return LedgerTotals(
            self.usage_count + other.usage_count,
            self.billable_seconds + other.billable_seconds,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
        )

    def describe(self) -> str:
        """``3 / 600 s``, with ``/ N input tokens / M output tokens`` when there are tokens."""
        text = f"{self.usage_count} / {self.billable_seconds:f} s"
        if self.input_tokens or self.output_tokens:
            text += f" / {self.input_tokens} input tokens / {self.output_tokens} output tokens"
        return text


class ModelPrice(BaseModel):
    """A model's price per hour, and the add-ons its price already includes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_hour: Price
    includes: tuple[str, ...] = ()
    source: str = ""


class TokenPrice(BaseModel):
    """A model priced per million input tokens and per million output tokens (LLM Gateway)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_million_input_tokens: Price
    per_million_output_tokens: Price
    source: str = ""


class AddOnPrice(BaseModel):
    """An add-on's price per hour: ``per_model`` overrides ``per_hour`` for the models it names.
    ``per_hour`` None: AssemblyAI publishes no price for it (on models not in ``per_model``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_hour: Price | None = None
    per_model: dict[str, Price] = Field(default_factory=dict)
    unpriced_reason: str = ""
    source: str = ""


class AddOnRate(BaseModel):
    """How one add-on is priced on one model: a rate (0 when included), or why it is not."""

    model_config = ConfigDict(frozen=True)

    per_hour: Price | None
    reason: str = ""


class ProductPrices(BaseModel):
    """Prices of one product. Plain decimal strings are accepted for both maps (schema 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: dict[str, ModelPrice | TokenPrice | Price]
    add_ons: dict[str, AddOnPrice | Price] = Field(default_factory=dict)
    regions: dict[str, Decimal] = Field(default_factory=dict)
    unpriced_reason: str = ""
    source: str = ""

    def model_price(self, model: str) -> ModelPrice | None:
        price = self.models.get(model)
        if isinstance(price, TokenPrice):
            return None
        return ModelPrice(per_hour=price) if isinstance(price, Decimal) else price

    def token_price(self, model: str) -> TokenPrice | None:
        price = self.models.get(model)
        return price if isinstance(price, TokenPrice) else None

    def region_factor(self, region: str) -> Decimal | None:
        """The multiplier of a region's prices: 1 for a product not priced by region (no
        ``regions``), the listed factor, or None for a region the table does not price."""
        if not self.regions:
            return Decimal(1)
        return self.regions.get(region)

    def add_on_rate(self, add_on: str, model: str) -> AddOnRate:
        """The rate of ``add_on`` on ``model``: included in the model's price (0), the model's own
        add-on price, the add-on's general price, or None with the reason."""
        model_price = self.model_price(model)
        if model_price is not None and add_on in model_price.includes:
            return AddOnRate(per_hour=Decimal(0))
        price = self.add_ons.get(add_on)
        if price is None:
            return AddOnRate(per_hour=None, reason=f"no price for add-on {add_on}")
        if isinstance(price, Decimal):
            return AddOnRate(per_hour=price)
        if model in price.per_model:
            return AddOnRate(per_hour=price.per_model[model])
        if price.per_hour is not None:
            return AddOnRate(per_hour=price.per_hour)
        why = f": {price.unpriced_reason}" if price.unpriced_reason else ""
        return AddOnRate(per_hour=None, reason=f"no price for add-on {add_on} on {model}{why}")


class PriceVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    version: str = Field(min_length=1)
    effective_from: date
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    sources: list[str] = Field(default_factory=list)
    async_: ProductPrices = Field(alias="async")
    streaming: ProductPrices
    sync: ProductPrices | None = None
    voice_agent: ProductPrices | None = None
    llm_gateway: ProductPrices | None = None

    def prices(self, product: Product) -> ProductPrices | None:
        """The product's prices, or None when this version does not price the product."""
        if product == "async":
            return self.async_
        prices: ProductPrices | None = getattr(self, product)
        return prices


class PriceTable(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1, 2]
    description: str = ""
    versions: list[PriceVersion] = Field(min_length=1)

    def for_month(self, month: str) -> PriceVersion | None:
        """The version in force on the first day of ``month`` (the latest effective_from), or
        None before the first version: rows are then exported unpriced, never guessed."""
        first_day = date.fromisoformat(f"{month}-01")
        candidates = [v for v in self.versions if v.effective_from <= first_day]
        return max(candidates, key=lambda v: v.effective_from) if candidates else None


class ExportRow(BaseModel):
    """One billing line: customer x product x project x model x region x dimensions x estimated,
    priced once. Quantities by unit: ``billable_seconds`` (seconds products) and
    ``input_tokens`` / ``output_tokens`` (LLM Gateway), each with its price (token prices per
    million, after the region's multiplier). ``cost`` is rounded to the cent per row;
    ``cost_unrounded`` is the exact amount."""

    model_config = ConfigDict(frozen=True)

    month: str
    customer_id: str
    product: Product
    project: str
    model: str
    region: str
    dimensions: str
    estimated: bool
    usage_count: int
    billable_seconds: Decimal
    billable_hours: Decimal
    input_tokens: int
    output_tokens: int
    price_per_hour: Decimal | None
    price_per_million_input_tokens: Decimal | None
    price_per_million_output_tokens: Decimal | None
    add_on_seconds: str
    add_on_prices: str
    cost: Decimal | None
    cost_unrounded: Decimal | None
    currency: str
    price_version: str
    unpriced: str
