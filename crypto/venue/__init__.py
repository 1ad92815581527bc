"""The venue interface (``protocol.Venue``), its records (``types``) and the ccxt adapter."""
