"""The REAL ``xtquant.xtconstant`` values (the wheel's module imports anywhere), re-exported."""

from xtquant.xtconstant import *  # noqa: F403
