"""The local exchange: a venue-neutral exchange model (``engine``) behind HTTP dialects that unmodified ccxt
classes drive (``okx_routes`` for OKX v5, ``binance_pm`` for Binance portfolio margin), with an admin door,
fault injection and rate limits (``server``, ``admin``, ``faults``, ``ratelimit``). See docs/crypto.md."""
