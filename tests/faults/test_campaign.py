"""Campaigns end to end: reproducibility, statistics, durability, Dask, the CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axc.cli import main
from tests.conftest import DIGITS

MODEL = str(DIGITS / "digits_cnn.onnx")
DATA = str(DIGITS / "test.npz")
QUANT = f'quantize * data="{DIGITS / "calib.npz"}"\n'


def _directives(tmp_path: Path, body: str, name: str = "d.ax") -> str:
    path = tmp_path / name
    path.write_text(QUANT + body)
    return str(path)


def _inject(capsys, *args: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code = main(["inject", MODEL, *args, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def _rows(folder: Path) -> list[tuple]:
    with sqlite3.connect(folder / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM results ORDER BY fault, chunk").fetchall()


def test_single_bit_campaign_is_reproducible_and_msb_flips_hurt_more(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * site=activations model=bitflip count=600 per=bit\n")
    code, first = _inject(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        str(tmp_path / "a"),
        "--seed",
        "5",
        "--images",
        "200",
    )
    assert code == 0
    code, again = _inject(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        str(tmp_path / "b"),
        "--seed",
        "5",
        "--images",
        "200",
        "--threads",
        "1",
    )
    assert code == 0
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")  # bit-exact, whatever the threads
    assert again["total"] == first["total"] and again["per_layer"] == first["per_layer"]
    assert (tmp_path / "a" / "faults.csv").read_text() == (
        tmp_path / "b" / "faults.csv"
    ).read_text()
    code, other = _inject(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        str(tmp_path / "c"),
        "--seed",
        "6",
        "--images",
        "200",
    )
    assert (tmp_path / "a" / "faults.csv").read_text() != (
        tmp_path / "c" / "faults.csv"
    ).read_text()
    assert other["seed"] == 6 and other["total"] != first["total"]
    # per=bit: 600 faults for each of the 8 bit positions
    assert first["faults"] == 8 * 600
    msb, lsb = first["per_bit"]["7"], first["per_bit"]["0"]
    assert msb["sdc1"]["ci"][0] > lsb["sdc1"]["ci"][1]  # intervals apart, not just the means
    for layer in first["per_layer"].values():
        lo, hi = layer["sdc1"]["ci"]
        assert lo <= layer["sdc1"]["rate"] <= hi
    assert first["total"]["inferences"] == 8 * 600 * 200
    for name in ("sdc1_per_layer.png", "sdc1_per_layer.svg", "sdc1_per_bit.png", "summary.json"):
        assert (tmp_path / "a" / name).stat().st_size > 0


def test_replaying_a_saved_fault_list_gives_the_same_results(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject op(Conv) site=weights model=stuck_at(1) bits=msb count=40\n")
    code, first = _inject(
        capsys, "-d", d, "--data", DATA, "--images", "100", "--save-faults", str(tmp_path / "f.csv")
    )
    assert code == 0
    code, replay = _inject(
        capsys,
        "-d",
        _directives(tmp_path, "", "q.ax"),
        "--data",
        DATA,
        "--images",
        "100",
        "--faults",
        str(tmp_path / "f.csv"),
    )
    assert code == 0
    assert replay["total"] == first["total"]
    assert replay["per_layer"] == first["per_layer"]


def _start(directives: str, folder: Path, *extra: str) -> subprocess.Popen[str]:
    """``axc inject`` in a process of its own, returned once 100 rows are saved."""
    argv = [sys.executable, "-m", "axc", "inject", MODEL, "-d", directives, "--data", DATA]
    proc = subprocess.Popen(
        [*argv, "--out", str(folder), "--quiet", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            if len(_rows(folder)) >= 100:
                break
        except sqlite3.Error:  # not created yet
            continue
    return proc


def test_a_killed_campaign_resumes_to_the_uninterrupted_result(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * site=activations model=bitflip count=all\n")
    code, _ = _inject(
        capsys, "-d", d, "--data", DATA, "--out", str(tmp_path / "full"), "--seed", "9"
    )
    assert code == 0
    expected = _rows(tmp_path / "full")
    folder = tmp_path / "killed"
    proc = _start(d, folder, "--seed", "9", "--threads", "2")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    partial = _rows(folder)
    assert 0 < len(partial) < len(expected), "the kill must land mid-campaign"
    code, resumed = _inject(
        capsys, "-d", d, "--data", DATA, "--out", str(folder), "--seed", "9", "--resume"
    )
    assert code == 0
    assert _rows(folder) == expected  # nothing lost, nothing twice
    assert resumed["complete"]


def test_ctrl_c_saves_what_finished(tmp_path) -> None:
    d = _directives(tmp_path, "inject * site=activations model=bitflip count=all\n")
    folder = tmp_path / "c"
    proc = _start(d, folder)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    assert len(_rows(folder)) >= 100


def test_dask_local_cluster_equals_the_local_run(tmp_path, capsys) -> None:
    import distributed

    d = _directives(
        tmp_path,
        "inject * site=activations model=bitflip count=300\n"
        "inject op(Gemm) site=accumulators model=bitflip count=50\n",
    )
    code, _ = _inject(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        str(tmp_path / "local"),
        "--seed",
        "4",
        "--images",
        "150",
    )
    assert code == 0
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        code, _ = _inject(
            capsys,
            "-d",
            d,
            "--data",
            DATA,
            "--out",
            str(tmp_path / "dask"),
            "--seed",
            "4",
            "--images",
            "150",
            "--scheduler",
            cluster.scheduler_address,
        )
    assert code == 0
    assert _rows(tmp_path / "dask") == _rows(tmp_path / "local")


# ---------------------------------------------------------------- bad input
def _error(capsys, *args: str) -> str:  # type: ignore[no-untyped-def]
    code = main(["inject", MODEL, *args])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err
    return err


def test_a_site_that_names_no_layer(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject conv9 site=activations count=10\n")
    err = _error(capsys, "-d", d, "--data", DATA)
    assert "d.ax:2:8" in err and "conv9" in err


def test_a_site_the_selection_does_not_have(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject op(MaxPool) site=weights count=10\n")
    err = _error(capsys, "-d", d, "--data", DATA)
    assert "no weights to inject into" in err


def test_a_bit_beyond_the_width(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * site=activations bits=[3, 9] count=10\n")
    err = _error(capsys, "-d", d, "--data", DATA)
    assert "bit 9 is beyond the 8-bit activations" in err and "d.ax:2" in err


@pytest.mark.parametrize("count", ["0", "-5"])
def test_a_count_that_is_not_positive(tmp_path, capsys, count) -> None:
    d = _directives(tmp_path, f"inject * site=activations count={count}\n")
    err = _error(capsys, "-d", d, "--data", DATA)
    assert "count must be positive" in err and "d.ax:2" in err


def test_an_auto_count_with_a_bad_confidence(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * count=auto(confidence=1.5)\n")
    err = _error(capsys, "-d", d, "--data", DATA)
    assert "confidence must lie strictly between 0 and 1" in err


def test_a_corrupt_results_file_on_resume(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * site=activations count=20\n")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "results.sqlite").write_bytes(b"this is not a database" * 100)
    err = _error(capsys, "-d", d, "--data", DATA, "--out", str(folder), "--resume")
    assert "not a readable axc campaign results file" in err
    assert (folder / "results.sqlite").read_bytes().startswith(b"this is not")  # left alone


def test_resuming_another_campaign_is_refused(tmp_path, capsys) -> None:
    d = _directives(tmp_path, "inject * site=activations count=20\n")
    folder = str(tmp_path / "out")
    assert (
        main(
            ["inject", MODEL, "-d", d, "--data", DATA, "--out", folder, "--quiet", "--images", "20"]
        )
        == 0
    )
    before = _rows(Path(folder))
    err = _error(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        folder,
        "--resume",
        "--seed",
        "3",
        "--images",
        "20",
    )
    assert "differs in" in err and "seed" in err
    err = _error(capsys, "-d", d, "--data", DATA, "--out", folder, "--images", "20")
    assert "--resume continues them" in err
    assert _rows(Path(folder)) == before


def test_an_unreachable_scheduler(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AXC_DASK_TIMEOUT", "2")
    d = _directives(tmp_path, "inject * site=activations count=20\n")
    err = _error(
        capsys,
        "-d",
        d,
        "--data",
        DATA,
        "--out",
        str(tmp_path / "o"),
        "--scheduler",
        "tcp://127.0.0.1:9",
    )
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err


def test_no_inject_statement(tmp_path, capsys) -> None:
    err = _error(capsys, "-d", _directives(tmp_path, ""), "--data", DATA)
    assert "inject" in err


def test_accumulator_faults_in_a_float_model_are_refused(tmp_path, capsys) -> None:
    path = tmp_path / "f.ax"
    path.write_text("inject op(Conv) site=accumulators count=10\n")
    err = _error(capsys, "-d", str(path), "--data", DATA)
    assert "f.ax:1:1" in err and "accumulator faults" in err and "quantize the model first" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resume"], "--resume needs --out DIR"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--images", "0"], "--images must be at least 1"),
        (["--memory", "0"], "the memory limit must be positive"),
        (["--confidence", "1"], "confidence must lie strictly between 0 and 1"),
        (["--compare-protection"], "the directives protect nothing"),
    ],
)
def test_campaign_options_out_of_range(tmp_path, capsys, extra, message) -> None:
    d = _directives(tmp_path, "inject * site=activations count=10\n")
    err = _error(capsys, "-d", d, "--data", DATA, *extra)
    assert message in err


def test_neither_directives_nor_a_fault_list(capsys) -> None:
    err = _error(capsys, "--data", DATA)
    assert "--directives" in err and "--faults" in err
