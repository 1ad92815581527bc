"""The sweep on Dask: the same table as local processes, on a loopback LocalCluster of its own or on an existing
cluster, and a worker killed mid-sweep costs only its points (the table is still complete and identical)."""

from __future__ import annotations

import os
import signal

import pytest

from backtest.sweep import SweepJob, sweep, write_sweep_csv
from backtest.sweep_axes import SweepError, parse_axis
from backtest.synth import generate
from settings.config import GridbridgeConfig
from settings.resolve import grid_params_by_code
from tests.kit import procs

distributed = pytest.importorskip("distributed", reason="pip install 'dask[distributed]'")

pytestmark = pytest.mark.slow
CODES = ("512890.SH", "159201.SZ")
AXES = [parse_axis("atr_grid_factor=0.28:0.34:0.02"), parse_axis("grid_step_floor=0.0008,0.001"),
        parse_axis("cooling=true,false")]  # fmt: skip


@pytest.fixture(scope="module")
def job():
    cfg = GridbridgeConfig()
    data = {code: generate(code, 40, seed) for seed, code in enumerate(CODES, start=5)}
    return SweepJob(
        data=data, params=grid_params_by_code(cfg, CODES, "realistic"), mode="realistic", config=cfg
    )


@pytest.fixture(scope="module")
def local_rows(job):
    return sweep(job, AXES, jobs=1)


@pytest.fixture
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,  # fmt: skip
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


def test_a_loopback_cluster_gives_the_same_csv_as_local_processes(job, local_rows, tmp_path):
    seen: list[int] = []

    rows = sweep(job, AXES, engine="dask", jobs=2, on_result=lambda i, row: seen.append(i))

    assert sorted(seen) == list(range(16))
    local_csv = write_sweep_csv(local_rows, tmp_path / "local.csv").read_bytes()
    assert write_sweep_csv(rows, tmp_path / "dask.csv").read_bytes() == local_csv


def test_the_loopback_cluster_listens_on_loopback_only_without_a_dashboard(job):
    psutil = pytest.importorskip("psutil")
    listening: list[tuple[str, int]] = []

    def look(index: int, row: dict) -> None:
        if not listening:
            for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
                listening.extend((c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                                 if c.status == psutil.CONN_LISTEN)  # fmt: skip

    sweep(job, AXES[:1], engine="dask", jobs=2, on_result=look)

    assert len(listening) >= 5  # the scheduler, its HTTP endpoint, two workers and their nannies
    assert {ip for ip, _ in listening} == {"127.0.0.1"} and 8787 not in {port for _, port in listening}


def _kill_busy_workers(client, count: int) -> list[str]:
    """SIGKILL ``count`` worker processes that are running a point right now (their nannies start new ones)."""
    assert procs.wait_for(lambda: sum(bool(k) for k in client.processing().values()) >= count, 60)
    busy = [address for address, keys in client.processing().items() if keys][:count]
    pids = client.run(os.getpid, workers=busy)
    for address in busy:
        os.kill(pids[address], signal.SIGKILL)
    return busy


@pytest.mark.parametrize("kill", [1, 2], ids=["one-worker", "every-worker"])
def test_workers_killed_mid_sweep_cost_only_their_points(job, local_rows, cluster, kill, caplog):
    local_cluster, client = cluster
    killed: list[str] = []
    arrived: list[int] = []

    def on_result(index: int, row: dict) -> None:
        arrived.append(index)
        if not killed:
            killed.extend(_kill_busy_workers(client, kill))
            assert len(arrived) < 16  # mid-sweep

    rows = sweep(job, AXES, engine="dask", scheduler=local_cluster.scheduler_address, on_result=on_result)

    assert len(killed) == kill
    assert not set(killed) & set(client.scheduler_info()["workers"])  # those processes are gone
    assert rows == local_rows
    assert sorted(arrived) == list(range(16))  # every point once: none lost, none twice
    if kill == 2:  # the scattered data died with every copy of it: sent again, its points submitted again
        assert "the sweep's data was lost with its workers; sending it again" in caplog.text


def test_an_unreachable_scheduler_is_a_clear_error(job):
    import dask

    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(SweepError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    ):
        sweep(job, AXES[:1], engine="dask", scheduler="tcp://127.0.0.1:9")


def test_cli_dask_engine_writes_the_same_csv_as_local(job, tmp_path):
    from backtest.cli import main
    from marketdata.bars import write_bars_csv

    files = []
    for code, bars in job.data.items():
        write_bars_csv(bars, tmp_path / f"{code}.csv")
        files += ["--data", f"{code}={tmp_path / f'{code}.csv'}"]
    common = ["backtest", "sweep", *files, "--mode", "realistic", "--grid", "atr_grid_factor=0.30,0.34",
              "--jobs", "1"]  # fmt: skip

    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--engine", "dask", "--out", str(tmp_path / "dask")]) == 0

    assert (tmp_path / "dask" / "sweep.csv").read_bytes() == (tmp_path / "local" / "sweep.csv").read_bytes()
    assert (tmp_path / "dask" / "sweep_heatmap.html").exists()


def test_loopback_workers_start_without_the_malloc_trim_threshold(job, monkeypatch):
    """The loopback cluster's workers start without MALLOC_TRIM_THRESHOLD_ (it made every large numpy
    temporary a fresh mmap on a worker); the other variables of distributed's default stay."""
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    seen: dict = {}

    def record(index, row):
        if not seen:
            seen.update(distributed.get_client().run(lambda: dict(os.environ)))

    sweep(job, [parse_axis("atr_grid_factor=0.3")], engine="dask", jobs=1, on_result=record)
    [environ] = seen.values()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ.get("OMP_NUM_THREADS") == "1"
