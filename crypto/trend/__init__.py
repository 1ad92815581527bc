"""The crypto trend loop's decisions: bar features, the trend + volatility-target strategy and the
fixed-weight portfolio (pure; ``crypto.execution`` approaches the targets it emits)."""
