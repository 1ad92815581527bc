"""An independent, deliberately plain implementation of reference-grid.md (lists and loops, indicators
recomputed from scratch on every bar). Shares nothing with ``mac.grid`` except the rules' text."""

from __future__ import annotations

from decimal import Decimal


def mean(xs):
    s = 0.0
    for x in xs:
        s = s + x
    return s / len(xs)


def naive_indicators(h, lo, c):
    n = len(c)
    tr = [None] * n
    for i in range(1, n):
        tr[i] = max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
    atr = [None] * n
    for i in range(14, n):
        atr[i] = mean(tr[i - 13 : i + 1])
    ma = [None] * n
    for i in range(59, n):
        ma[i] = mean(c[i - 59 : i + 1])
    slope = [None] * n
    s = None
    for i in range(64, n):
        raw = (ma[i] - ma[i - 5]) / ma[i - 5]
        s = raw if s is None else 0.5 * raw + 0.5 * s
        slope[i] = s
    atr_avg = [None] * n
    for i in range(74, n):
        atr_avg[i] = mean(atr[i - 60 : i])
    rsi = [100.0] * n
    for i in range(14, n):
        gains, losses = [], []
        for j in range(i - 13, i + 1):
            d = c[j] - c[j - 1]
            gains.append(d if d > 0 else 0.0)
            losses.append(-d if d < 0 else 0.0)
        g, lo_ = mean(gains), mean(losses)
        rsi[i] = 100.0 if lo_ == 0 else 100 - 100 / (1 + g / lo_)
    return atr, slope, atr_avg, rsi


def naive_reference(
    t, h, lo, c, factor, floor, tp0, sell_factor, cooling, float_stop=False, max_loss=15000.0
):
    """Trade list ``[(time, side, price, shares, reason)]`` and the final cash (Decimal)."""
    atr, slope, atr_avg, rsi = naive_indicators(h, lo, c)
    lots = []  # [shares, cost(Decimal), buy_price]
    anchor = None
    last_flat = -(10**9)
    cash = Decimal(0)
    rate = Decimal("0.0001")
    trades = []
    u = -1
    for i in range(len(c)):
        if atr[i] is None or slope[i] is None or atr_avg[i] is None:
            continue
        u += 1
        P = c[i]
        Pd = Decimal(repr(P))
        if anchor is None:
            anchor = P
        step = max(floor, atr[i] / P * factor)
        tp = tp0
        size = 1
        if slope[i] > 0:
            step *= 1.2
            tp *= 1.33
            size = 0.7
        elif slope[i] < 0:
            step *= 1.0
            tp *= 0.83
            size = 1.2
        step += 0.0001 * len(lots)
        pause = atr[i] > atr_avg[i] * 2.0
        triggered = P <= anchor * (1 - step)
        if lots:
            shares = sum(x[0] for x in lots)
            cost = 0.0
            for x in lots:
                cost += float(x[1])
            if float_stop and shares * P - cost < -max_loss:
                trades.append((t[i], "SELL", P, shares, "FLOAT_STOP"))
                cash += Pd * shares - rate * shares * Pd
                lots = []
                last_flat = u
                anchor = P
            else:
                keep = []
                for x in lots:
                    if P >= x[2] * (1 + tp * sell_factor):
                        trades.append((t[i], "SELL", P, x[0], "TAKE_PROFIT"))
                        cash += Pd * x[0] - rate * x[0] * Pd
                    else:
                        keep.append(x)
                if len(keep) < len(lots) and not keep:
                    last_flat = u
                    anchor = P
                lots = keep
        if len(lots) < 9 and triggered and not pause:
            blocked = cooling and not lots and (u - last_flat) < (5 if rsi[i] < 35 else 15)
            if not blocked:
                money = 200000 * 1 / 9 * size
                shares = int(money / P / 100) * 100
                if shares > 0:
                    trades.append((t[i], "BUY", P, shares, "GRID_BUY"))
                    cash -= Pd * shares + rate * shares * Pd
                    lots.append([shares, Pd * shares, P])
                    anchor = P
    return trades, cash, lots
