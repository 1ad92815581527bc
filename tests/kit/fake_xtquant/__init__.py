"""A faithful fake of ``xtquant`` (MiniQMT's Python API) for tests and dry runs off Windows.

Submodules mirror the real package: ``xttrader`` (XtQuantTrader + XtQuantTraderCallback, same method
names and signatures), ``xttype`` and ``xtconstant`` (the REAL wheel's modules, re-exported: they are plain
Python), ``xtdata`` (ticks and 1-minute bars from ``backtest.synth``). ``terminal.FakeTerminal`` is the
simulated terminal's books in a folder, shared by every process, and the exchange's controls for tests.

Point gridbridge at it with ``GRIDBRIDGE_XTQUANT_MODULE=tests.kit.fake_xtquant`` (the factory imports
``<module>.xttrader`` etc. instead of ``xtquant.*``), ``xtquant.userdata_path`` = the terminal folder and
``FAKE_XTQUANT_DIR`` = the same folder for xtdata.
"""

from tests.kit.fake_xtquant import xtconstant, xtdata, xttrader, xttype
from tests.kit.fake_xtquant.terminal import FakeTerminal

__all__ = ["FakeTerminal", "xtconstant", "xtdata", "xttrader", "xttype"]
