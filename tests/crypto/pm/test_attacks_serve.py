"""The operator and the filesystem against ``pm serve``, and two of a kind: every refusal is loud (a coded
line on stderr, a non-zero exit) and happens before any state is read or any file is written through a
link. Two managers on one store or one Redis: the second exits 4."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from crypto.pm.cli import main as pm_main
from crypto.pm.instance import INSTANCE_KEY, InstanceLost, RedisInstance, open_store_lock

TOKEN = "a-long-enough-token"
ROOT = Path(__file__).resolve().parents[3]


def serve(tmp: Path, redis_url: str, db: Path | None = None, *extra: str) -> list[str]:
    return ["serve", "--redis", redis_url, "--db", str(db or tmp / "pm.db"), "--venue", "okx-fake",
            "--venue-url", "http://127.0.0.1:9", *extra]


@pytest.mark.parametrize(("token", "code"), [(None, "TOKEN_MISSING"), ("", "TOKEN_MISSING"), ("short", "TOKEN_WEAK"),
                                             (" " + TOKEN, "TOKEN_WEAK")])
def test_a_missing_or_weak_token_fails_loudly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str], token: str | None, code: str) -> None:
    if token is None:
        monkeypatch.delenv("GRIDBRIDGE_PM_TOKEN", raising=False)
    else:
        monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", token)
    assert pm_main(serve(tmp_path, "redis://127.0.0.1:1/0")) == 2
    assert code in capsys.readouterr().err
    assert not (tmp_path / "pm.db").exists()


@pytest.mark.parametrize(("url", "code"), [("http://127.0.0.1:6379", "REDIS_URL_INVALID"), ("nonsense", "REDIS_URL_INVALID"),
                                           ("redis://127.0.0.1:1/0", "REDIS_DOWN")])
def test_a_wrong_redis_url_is_a_coded_exit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], url: str, code: str) -> None:
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    assert pm_main(serve(tmp_path, url)) == 2
    assert code in capsys.readouterr().err


@pytest.mark.parametrize(("content", "code"), [("{not json", "CONFIG_FETCH_FAILED"), ("[1, 2]", "CONFIG_INVALID"),
                                               (json.dumps({"manage_interval_s": 1}), "CONFIG"),
                                               (json.dumps({"ladder": [{"roe": "NaN", "fraction": "0.5"}]}), "CONFIG"),
                                               ("[" * 200_000 + "]" * 200_000, "CONFIG_FETCH_FAILED"),
                                               ("{" + " " * (2 * 1024 * 1024) + "}", "CONFIG_TOO_LARGE"),
                                               ("\udcff", "CONFIG_FETCH_FAILED")])
def test_an_invalid_config_file_is_a_coded_exit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str], content: str, code: str) -> None:
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    cfg = tmp_path / "pm.json"
    cfg.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert pm_main(serve(tmp_path, "redis://127.0.0.1:1/0", None, "--config", str(cfg))) == 2
    assert code in capsys.readouterr().err


def _db_is_a_symlink(tmp: Path) -> Path:
    target = tmp / "elsewhere.db"
    target.write_bytes(b"")
    (tmp / "pm.db").symlink_to(target)
    return tmp / "pm.db"


def _db_is_a_directory(tmp: Path) -> Path:
    (tmp / "pm.db").mkdir()
    return tmp / "pm.db"


def _db_in_a_missing_folder(tmp: Path) -> Path:
    return tmp / "nope" / "pm.db"


def _db_in_a_read_only_folder(tmp: Path) -> Path:
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    return ro / "pm.db"


def _wal_is_a_symlink(tmp: Path) -> Path:
    (tmp / "pm.db-wal").symlink_to(tmp / "victim")
    return tmp / "pm.db"


@pytest.mark.parametrize(("make", "code"), [(_db_is_a_symlink, "STORE_PATH_SYMLINK"),
                                            (_db_is_a_directory, "STORE_PATH_NOT_A_FILE"),
                                            (_db_in_a_missing_folder, "STORE_DIR_MISSING"),
                                            (_db_in_a_read_only_folder, "STORE_NOT_WRITABLE"),
                                            (_wal_is_a_symlink, "STORE_PATH_SYMLINK")])
def test_a_bad_store_path_is_exit_3_and_nothing_is_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str], redis_url: str,
                                                           make: object, code: str) -> None:
    if os.geteuid() == 0 and make is _db_in_a_read_only_folder:
        pytest.skip("root writes into a read-only folder")
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    db = make(tmp_path)  # type: ignore[operator]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        assert pm_main(serve(tmp_path, redis_url, db)) == 3
    finally:
        if (tmp_path / "ro").exists():
            (tmp_path / "ro").chmod(0o700)
    assert code in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert redis.Redis.from_url(redis_url).get(INSTANCE_KEY) is None  # the Redis lease was not left behind


def test_a_second_manager_on_the_same_store_exits_4(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    fd = open_store_lock(tmp_path / "pm.db")  # what the running manager holds
    try:
        other = tmp_path / "link"
        other.symlink_to(tmp_path)  # another path to the same file
        assert pm_main(serve(tmp_path, redis_url, other / "pm.db")) == 4
        assert "STORE_IN_USE" in capsys.readouterr().err
    finally:
        os.close(fd)


def test_a_second_manager_on_the_same_redis_exits_4(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    first = RedisInstance(redis.Redis.from_url(redis_url, decode_responses=True), tmp_path / "a.db")
    first.acquire()
    try:
        assert pm_main(serve(tmp_path, redis_url, tmp_path / "b.db")) == 4
        assert "REDIS_IN_USE" in capsys.readouterr().err
        # The refused one let go of its store lock: a later manager on that store starts.
        os.close(open_store_lock(tmp_path / "b.db"))
    finally:
        first.release()


def test_the_lease_survives_a_redis_loss_and_is_lost_to_a_taker(redis_url: str, tmp_path: Path) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    a = RedisInstance(r, tmp_path / "a.db", ttl_ms=60_000)
    a.acquire()
    r.flushall()  # Redis lost everything
    a.renew()  # taken again
    assert r.get(INSTANCE_KEY) == a.token
    r.set(INSTANCE_KEY, "someone else")
    with pytest.raises(InstanceLost):
        a.renew()


@pytest.mark.slow
def test_two_serve_processes_one_runs_the_other_exits_4(redis_url: str, tmp_path: Path) -> None:
    """Real processes against the local exchange: the first serves, the second (same store through another
    path, then another store on the same Redis) exits 4 at once with its code, the first keeps serving."""
    server = pytest.importorskip("crypto.fakex.server")
    with server.FakeExchange.start(seed=7, scenario="calm") as fx:
        c = fx.credentials
        creds = tmp_path / "creds.json"
        creds.write_text(json.dumps({"api_key": c.api_key, "secret": c.secret, "passphrase": c.passphrase}))
        env = {**os.environ, "GRIDBRIDGE_PM_TOKEN": TOKEN}

        def cmd(db: Path) -> list[str]:
            return [sys.executable, "-c", "import sys; from gridbridge.cli import main; sys.exit(main())", "crypto",
                    "pm", "serve", "--redis", redis_url, "--db", str(db), "--venue", "okx-fake", "--venue-url",
                    fx.url, "--credentials", str(creds), "--symbols", "BTC/USDT:USDT"]

        first = subprocess.Popen(cmd(tmp_path / "pm.db"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env, cwd=ROOT)
        try:
            line = first.stdout.readline()  # type: ignore[union-attr]
            assert line.startswith("pm http://127.0.0.1:"), line
            (tmp_path / "alias").symlink_to(tmp_path)
            for db in (tmp_path / "alias" / "pm.db", tmp_path / "other.db"):
                second = subprocess.run(cmd(db), capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
                assert second.returncode == 4, second.stderr
                assert "ALREADY_RUNNING" in second.stderr
            assert first.poll() is None  # the first one is still serving
        finally:
            first.send_signal(signal.SIGTERM)
            try:
                rc = first.wait(timeout=15)
            except subprocess.TimeoutExpired:
                first.kill()
                rc = first.wait()
        assert rc == 0
        assert redis.Redis.from_url(redis_url).get(INSTANCE_KEY) is None  # released on the way out


@pytest.mark.parametrize("port", ["-1", "70000", "http"])
def test_a_bad_http_port_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], port: str) -> None:
    with pytest.raises(SystemExit) as err:
        pm_main(serve(tmp_path, "redis://127.0.0.1:1/0", None, "--http-port", port))
    assert err.value.code == 2 and "HTTP_PORT_INVALID" in capsys.readouterr().err


@pytest.mark.slow
def test_an_http_port_in_use_is_a_coded_exit_and_the_locks_are_released(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path, redis_url: str,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    server = pytest.importorskip("crypto.fakex.server")
    monkeypatch.setenv("GRIDBRIDGE_PM_TOKEN", TOKEN)
    with server.FakeExchange.start(seed=7, scenario="calm") as fx, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        c = fx.credentials
        creds = tmp_path / "creds.json"
        creds.write_text(json.dumps({"api_key": c.api_key, "secret": c.secret, "passphrase": c.passphrase}))
        args = ["serve", "--redis", redis_url, "--db", str(tmp_path / "pm.db"), "--venue", "okx-fake", "--venue-url",
                fx.url, "--credentials", str(creds), "--http-port", str(taken.getsockname()[1])]
        assert pm_main(args) == 2
        assert "HTTP_PORT_UNAVAILABLE" in capsys.readouterr().err
        assert pm_main([*args[:-2], "--symbols", "BTC/USDT:USDT,NOPE/USDT"]) == 2  # a typo: loud, at start
        assert "SYMBOL_UNKNOWN 'NOPE/USDT'" in capsys.readouterr().err
    assert redis.Redis.from_url(redis_url).get(INSTANCE_KEY) is None
    os.close(open_store_lock(tmp_path / "pm.db"))  # the store lock was released too
