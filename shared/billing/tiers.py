"""The subscription tiers, exactly as the design prices them. Money is Decimal with its
currency, stored as integer minor units (cents): never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "USD"
MINOR_UNITS = 100  # cents in a dollar
OVERAGE_CEILING = Decimal("1.05")  # past 105 % of the quota the AI stops, deposit or not


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str = CURRENCY

    @classmethod
    def of_minor(cls, minor: int, currency: str = CURRENCY) -> Money:
        return cls(Decimal(minor) / MINOR_UNITS, currency)

    @property
    def minor(self) -> int:
        return int((self.amount * MINOR_UNITS).to_integral_value(ROUND_HALF_UP))

    def __str__(self) -> str:
        return f"{self.currency} {self.amount.quantize(Decimal('0.01')):,}"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    price: Money  # a month
    messages: int  # AI replies included a month
    outlets: int
    knowledge_bases: int | None  # None: unlimited
    storage_mb: int
    overage: Money  # per AI reply past the quota, paid from the deposit
    requests_per_minute: int  # the staff APIs' rate limit for the tenant

    @property
    def storage_bytes(self) -> int:
        return self.storage_mb * 1024 * 1024

    @property
    def overage_ceiling(self) -> int:
        """The last message number the deposit may pay for (105 % of the quota)."""
        return int(self.messages * OVERAGE_CEILING)


TIERS = {
    tier.name: tier
    for tier in (
        Tier("starter", Money(Decimal("99.00")), 500, 1, 1, 50, Money(Decimal("0.10")), 100),
        Tier("growth", Money(Decimal("299.00")), 2_000, 3, 3, 200, Money(Decimal("0.08")), 100),
        Tier("enterprise", Money(Decimal("799.00")), 10_000, 10, None, 1_024, Money(Decimal("0.05")), 1_000),
    )
}
ORDER = tuple(TIERS)  # cheapest first: a move right is an upgrade
DEFAULT_PLAN = "starter"


def tier(name: str) -> Tier:
    return TIERS[name]


def is_upgrade(current: str, new: str) -> bool:
    return ORDER.index(new) > ORDER.index(current)
