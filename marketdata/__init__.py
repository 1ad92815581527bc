"""Market data: bars and their loaders (CSV, QMT exports, Parquet), shared by the producer and the backtest."""
