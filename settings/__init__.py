"""Settings: the typed config that gathers the sections of every layer (vault, market, executor, node, risk, gate,
grid) -- ``config``; the grid's parameter model and tuned defaults (``grid``); the checked ``grid`` section
(``grid_section``); and the one resolver of a symbol's grid parameters (``resolve``).

Sits above ``shared_schema`` and ``core`` and below the ETF code (``mac.grid``, ``windows``) and the processes.
"""
