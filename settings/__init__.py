"""Settings: the typed config that gathers the sections of every layer (vault, market, executor, node, risk, gate).

Sits above ``shared_schema`` and ``core`` and below the ETF code (``mac.grid``, ``windows``) and the processes.
"""
