"""Timing and set-up shared by the benchmark scripts (run them as ``python bench/NAME.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIGHT_MODELS = "backend/test/data/light"


def ort_session(model: str, threads: int = 2) -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads, quiet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def light_resnet50(folder: Path) -> Path:
    """onnx's light ResNet-50 with a free batch dimension, saved in ``folder``.

    The model hard-codes batch 1 (input, output and its final Reshape to
    [1, 2048]); freeing it lets every engine run the same batch."""
    import numpy as np
    import onnx

    light = Path(onnx.__file__).parent / LIGHT_MODELS
    model = onnx.load(str(light / "light_resnet50.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for i, init in enumerate(model.graph.initializer):
        if init.name == "OC2_DUMMY_1":
            free = onnx.numpy_helper.from_array(np.array([0, -1], np.int64), init.name)
            model.graph.initializer[i].CopyFrom(free)
    path = folder / "resnet50.onnx"
    onnx.save(model, str(path))
    return path


def best_of(fn: Callable[[], object], repeat: int, budget_s: float = 1.0) -> float:
    """The fastest of at least ``repeat`` runs, repeated until ``budget_s`` has
    passed (short runs are noisy on a shared machine), after one warm-up."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeat or spent < budget_s:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return min(times)
