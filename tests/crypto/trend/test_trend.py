from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.trend.features import Bar, atr, breakout, ema, realised_vol, true_ranges
from crypto.trend.strategy import TrendConfig, TrendSignal, portfolio_targets, trend_signal

D = Decimal


def bars_from(closes: list[Decimal], spread: Decimal = Decimal(1)) -> list[Bar]:
    out = []
    prev = closes[0]
    for i, c in enumerate(closes):
        out.append(Bar(i * 3_600_000, prev, max(prev, c) + spread, min(prev, c) - spread, c))
        prev = c
    return out


def test_ema_seeds_with_mean_then_follows_alpha():
    values = [D(1), D(2), D(3), D(4)]
    out = ema(values, 3)
    assert out[:2] == [None, None]
    assert out[2] == D(2)
    assert out[3] == D(2) + D("0.5") * (D(4) - D(2))


def test_true_range_uses_previous_close_gap():
    bars = [Bar(0, D(10), D(11), D(9), D(10)), Bar(1, D(15), D(16), D(14), D(15))]
    assert true_ranges(bars) == [D(2), D(6)]  # the gap from 10 to 16 counts
    assert atr(bars, 2)[1] == D(4)


def test_realised_vol_zero_on_a_constant_growth_rate():
    closes = [D(100) * D("1.01") ** i for i in range(10)]
    vols = realised_vol(closes, 3, 365)
    assert vols[:3] == [None, None, None]
    assert all(v is not None and v < D("1e-20") for v in vols[3:])


def test_breakout_signals_new_high_and_new_low():
    bars = bars_from([D(100), D(100), D(100), D(110), D(80)], spread=D("0.5"))
    assert breakout(bars, 2) == [None, None, 0, 1, -1]


@given(st.lists(st.integers(min_value=50, max_value=200), min_size=5, max_size=40), st.integers(1, 10))
@settings(max_examples=60, deadline=None)
def test_ema_stays_within_the_range_of_its_inputs(raw, span):
    values = [D(v) for v in raw]
    for out in ema(values, span):
        assert out is None or min(values) <= out <= max(values)


@given(st.lists(st.integers(min_value=50, max_value=200), min_size=60, max_size=120))
@settings(max_examples=30, deadline=None)
def test_targets_respect_gross_cap_and_budget(raw):
    cfg = TrendConfig(fast_span=3, slow_span=8, breakout_window=5, atr_period=5, vol_window=10)
    bars = bars_from([D(v) for v in raw])
    sig = trend_signal("BTC/USDT:USDT", bars, cfg)
    sig2 = TrendSignal("ETH/USDT:USDT", sig.direction, sig.vol_scalar, sig.close, sig.atr, sig.realised_vol)
    equity, budget = D(10_000), D("0.5")
    targets = portfolio_targets({sig.symbol: sig, sig2.symbol: sig2}, equity, budget, cfg)
    gross = sum(abs(t.qty) * sig.close for t in targets)
    assert gross <= cfg.max_gross_leverage * equity * budget + D("1e-12")
    for t in targets:
        assert (t.qty > 0) == (sig.direction > 0) or t.qty == 0


def test_uptrend_goes_long_with_a_stop_below_and_deterministic():
    cfg = TrendConfig(fast_span=3, slow_span=8, breakout_window=5, atr_period=5, vol_window=10)
    closes = [D(100) + D(i) + (D(2) if i % 2 else D(0)) for i in range(40)]
    bars = bars_from(closes)
    sig = trend_signal("BTC/USDT:USDT", bars, cfg)
    assert sig.direction == 1
    assert sig.stop_price(cfg.stop_atr_multiple) < sig.close
    a = portfolio_targets({"BTC/USDT:USDT": sig}, D(10_000), D(1), cfg)
    b = portfolio_targets({"BTC/USDT:USDT": sig}, D(10_000), D(1), cfg)
    assert a == b
    btc = next(t for t in a if t.symbol == "BTC/USDT:USDT")
    eth = next(t for t in a if t.symbol == "ETH/USDT:USDT")
    assert btc.qty > 0 and eth.qty == 0 and eth.reason == "NO_SIGNAL"


def test_cross_in_a_range_does_not_open_without_breakout():
    cfg = TrendConfig(fast_span=3, slow_span=8, breakout_window=30, atr_period=5, vol_window=10)
    closes = [D(100) + (D(3) if (i // 4) % 2 else D(-3)) for i in range(45)]
    sig = trend_signal("BTC/USDT:USDT", bars_from(closes), cfg)
    assert sig.direction == 0


def test_zero_budget_gives_flat_targets():
    cfg = TrendConfig()
    sig = TrendSignal("BTC/USDT:USDT", 1, D(1), D(100), D(2), D("0.4"))
    targets = portfolio_targets({"BTC/USDT:USDT": sig}, D(10_000), D(0), cfg)
    assert all(t.qty == 0 for t in targets)


def test_config_refuses_fast_not_shorter_than_slow():
    with pytest.raises(ValueError):
        TrendConfig(fast_span=10, slow_span=10)


def test_bar_refuses_close_above_high():
    with pytest.raises(ValueError):
        Bar(0, D(1), D(2), D(1), D(3))


def test_bar_builder_folds_samples_into_interval_bars():
    from crypto.trend.bars import BarBuilder

    b = BarBuilder(1000)
    for ts, px in ((0, "10"), (400, "12"), (900, "9"), (1500, "11"), (3100, "13"), (1200, "1")):
        b = b.add(ts, D(px))
    closed = b.bars()
    assert [(x.ts_ms, x.open, x.high, x.low, x.close) for x in closed] == [
        (0, D(10), D(12), D(9), D(9)), (1000, D(11), D(11), D(11), D(11))]
    assert b.current is not None and b.current.ts_ms == 3000


def test_one_sample_stamped_2099_never_freezes_the_bars():
    """Time attack: a clock that reads 2099 once. Before, the bar it opened was "the open bar" and every
    later (true) sample was older than it: ignored, no bar ever closed again."""
    from crypto.trend.bars import BarBuilder

    b = BarBuilder(1000)
    for t in range(0, 3000, 250):
        b = b.add(t, Decimal(100 + t // 1000))
    b = b.add(4_070_908_800_000, Decimal(999))  # the outlier (the price is kept out too)
    for t in range(3000, 6000, 250):
        b = b.add(t, Decimal(100 + t // 1000))
    assert [bar.ts_ms for bar in b.bars()] == [0, 1000, 2000, 3000, 4000]
    assert all(bar.high < 999 for bar in b.bars())
    b2 = BarBuilder(1000)
    for t in (0, 500, 1000, 1100):
        b2 = b2.add(t, Decimal(100))
    b2 = b2.add(4_070_908_800_000, Decimal(999))
    b2 = b2.add(1200, Decimal(101))  # same interval as the bar the outlier closed early: reopened
    b2 = b2.add(2000, Decimal(100))
    assert [(bar.ts_ms, bar.close) for bar in b2.bars()] == [(0, Decimal(100)), (1000, Decimal(101))]
    far = 4_070_908_800_000
    confirmed = BarBuilder(1000).add(0, Decimal(1)).add(far, Decimal(1)).add(far + 1, Decimal(1)).add(50, Decimal(5))
    assert confirmed.current is not None and confirmed.current.ts_ms == far  # two samples: the clock moved (limit)
