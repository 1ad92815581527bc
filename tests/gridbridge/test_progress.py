"""The dry run speaks while it works: progress lines from the shared files (gridbridge.progress)."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import timedelta
from decimal import Decimal

import pytest

from gridbridge.progress import ProgressPrinter, ProgressSource, RunProgress, progress_line
from shared_schema.atomic_io import atomic_write_model
from shared_schema.models import (
    POOL_FILE,
    QUOTE_FILE,
    RESULT_FILE,
    PoolFile,
    Result,
    ResultFile,
    ResultStatus,
)
from shared_schema.signal_io import update_signal_file
from shared_schema.types import datetime_to_ms
from tests.kit import procs
from tests.kit.stubs import SESSION_TIME, make_quote_file, make_signal

T0 = datetime_to_ms(SESSION_TIME)
BARS = [T0 + i * 60_000 for i in range(10)]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _run(printer: ProgressPrinter, clock: FakeClock, steps: list[RunProgress], wall_step: float) -> None:
    for p in steps:
        clock.t += wall_step
        printer.show(p)
    printer.close(steps[-1])


def test_a_log_gets_plain_lines_every_few_seconds_with_market_time_rising_and_the_final_counts():
    stream, clock = io.StringIO(), FakeClock()
    printer = ProgressPrinter(stream, BARS, is_tty=False, every_s=5.0, clock=clock)
    steps = [RunProgress(market_ms=t, signals=i, fills=i // 2, utilization=i / 20) for i, t in enumerate(BARS)]
    steps.append(RunProgress(market_ms=BARS[-1], signals=12, fills=11, utilization=0.4))  # settled after the replay
    _run(printer, clock, steps, wall_step=1.0)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 2 <= len(lines) <= 4  # one line per 5 s of an 11 s run, plus the last
    times = [re.search(r"market (\S+ \S+)", line).group(1) for line in lines]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert lines[-1].startswith("dry run: market") and "100%" in lines[-1]
    assert "signals 12  fills 11" in lines[-1] and "pool 40.0%" in lines[-1]


def test_a_log_gets_no_line_while_nothing_moves():
    stream, clock = io.StringIO(), FakeClock()
    printer = ProgressPrinter(stream, BARS, is_tty=False, every_s=1.0, clock=clock)
    same = RunProgress(market_ms=BARS[3], signals=2)
    _run(printer, clock, [same] * 20, wall_step=1.0)
    assert len(stream.getvalue().splitlines()) == 1


def test_a_terminal_gets_one_line_rewritten_in_place_and_ended_at_the_close():
    stream, clock = io.StringIO(), FakeClock()
    printer = ProgressPrinter(stream, BARS, is_tty=True, clock=clock, columns=lambda: 200)
    _run(printer, clock, [RunProgress(market_ms=t, signals=i) for i, t in enumerate(BARS)], wall_step=0.5)
    out = stream.getvalue()
    assert out.count("\r") == len(BARS) + 1 and out.count("\n") == 1 and out.endswith("\n")
    assert "signals 9" in out.rsplit("\r", 1)[-1]


def test_a_narrow_terminal_gets_the_line_cut_to_its_width_so_it_never_wraps():
    stream, clock = io.StringIO(), FakeClock()
    printer = ProgressPrinter(stream, BARS, is_tty=True, clock=clock, columns=lambda: 40)
    _run(printer, clock, [RunProgress(market_ms=t, signals=i) for i, t in enumerate(BARS)], wall_step=0.5)
    rows = stream.getvalue().rstrip("\n").split("\r")[1:]
    assert rows and all(len(row) <= 39 for row in rows)


def test_the_line_counts_bars_replayed_not_clock_time():
    # Lunch and the night are gaps in market time: the share is of the bars, not of the span.
    bars = [T0, T0 + 60_000, T0 + 86_400_000, T0 + 86_460_000]
    assert " 50%" in progress_line(RunProgress(market_ms=T0 + 60_000), bars, 1.0)
    assert "waiting" in progress_line(RunProgress(), bars, 0.0)


def test_the_source_reads_the_shared_files_and_writes_none(tmp_path):
    atomic_write_model(tmp_path / QUOTE_FILE, make_quote_file(when=SESSION_TIME + timedelta(minutes=3)))
    pending = make_signal(signal_id="S3", client_order_id="S3")
    update_signal_file(tmp_path, SESSION_TIME, add=[pending])
    results = {f"S{i}": Result(signal_id=f"S{i}", status=ResultStatus.FILLED if i else ResultStatus.REJECTED)
               for i in range(3)}
    atomic_write_model(tmp_path / RESULT_FILE, ResultFile(seq=1, updated_at=SESSION_TIME, results=results,
                                                          open_orders=1))
    zero = Decimal(0)
    atomic_write_model(tmp_path / POOL_FILE, PoolFile(
        seq=1, updated_at=SESSION_TIME, physical_pool=Decimal(300000), reserve_ratio=Decimal("0.15"),
        nominal_cap_159201=Decimal(200000), nominal_cap_512890=Decimal(200000), used_159201=Decimal(60000),
        used_512890=zero, frozen_159201=zero, frozen_512890=zero, acc_alpha_159201=zero, acc_alpha_512890=zero,
        utilization=0.2, risk_state="DEGRADED"))
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.iterdir()}

    p = ProgressSource(tmp_path).read()

    assert p == RunProgress(market_ms=datetime_to_ms(SESSION_TIME + timedelta(minutes=3)), signals=4, fills=2,
                            open_orders=1, utilization=0.2, risk_state="DEGRADED")
    assert {q.name: (q.stat().st_mtime_ns, q.stat().st_size) for q in tmp_path.iterdir()} == before
    assert "DEGRADED" in progress_line(p, BARS, 1.0)


def test_an_empty_folder_is_no_progress_yet(tmp_path):
    assert ProgressSource(tmp_path).read() == RunProgress()


@pytest.mark.slow
def test_the_dry_run_writes_progress_lines_to_a_log(tmp_path):
    log = tmp_path / "run.log"
    with open(log, "wb") as out:  # not a terminal: plain lines
        code = subprocess.run(procs.gridbridge_cmd("dry-run", "--shared-dir", str(tmp_path / "shared"),
                                                         "--days", "1", "--speed", "3000"),
                                    stdout=out, stderr=subprocess.STDOUT, env=procs.env(), cwd=procs.ROOT,
                                    timeout=300).returncode
    text = log.read_text()
    assert code == 0, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("dry run: market")]
    assert lines and "\r" not in text
    final = re.search(r"signals (\d+)  fills (\d+)", lines[-1])
    summary = re.search(r"signals (\d+)  orders sent \d+  fills (\d+)", text)
    assert final is not None and summary is not None and final.groups() == summary.groups()
    assert "100%" in lines[-1]
    assert (tmp_path / "shared" / RESULT_FILE).exists()
