"""Shared fixtures. Every test runs with AXC_VERIFY=1, so the pass manager
verifies the IR after each pass."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

os.environ["AXC_VERIFY"] = "1"

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
#: the nine model-zoo architectures the onnx package ships with constant weights
LIGHT_MODELS = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the lines tests record as ``summary`` properties (the ONNX
    conformance count): a worker's own output never reaches the terminal."""
    for kind in ("passed", "failed"):
        for report in terminalreporter.stats.get(kind, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "summary" and report.when == "call":
                    terminalreporter.write_line(str(value))


@pytest.fixture(scope="session", autouse=True)
def synthesis_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One yosys and exploration cache for the whole run, away from the user's:
    each array variant is characterized once. Tests of the cache itself set
    their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AXC_CACHE_DIR", str(tmp_path_factory.mktemp("axc-cache")))
        yield


@pytest.fixture
def digits_model() -> Path:
    return DIGITS / "digits_cnn.onnx"


@pytest.fixture
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(DIGITS / "test.npz")
    return data["x"], data["y"]


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: dict[str, np.ndarray] | None = None,
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "test",
        list(inputs),
        list(outputs),
        [numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def tensor(
    name: str, shape: Sequence[int | str | None] | None, elem: int = TensorProto.FLOAT
) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def ort_run(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)
