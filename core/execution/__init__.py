"""Pure execution helpers: venue filters, rebalancing, rate limiting, health, protective orders."""
