"""The ``gridbridge`` subcommands, one module per job. Each module's ``register(subparsers)`` adds its
command(s); ``gridbridge.cli.COMMANDS`` lists them with their one-line help and imports a module only when
its command runs, so every module keeps its heavy imports (pandas, the executor, the backtest) inside the
handlers."""
