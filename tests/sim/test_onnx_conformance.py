"""ONNX's own backend conformance suite, run against axc's import path and
float executor (ONNX -> axc IR -> executor).

Cases are selected by pattern: the node tests of every op axc supports and
the nine light model-zoo models. Excluded, again by pattern:

* ``*_expanded*``: the op's function body, decomposed into ops axc does not
  support (ReduceMax, Exp, Range, ...);
* variants that need features outside axc's IR, each named below.
"""

from __future__ import annotations

import os
import re
import unittest
from collections.abc import Callable

import onnx.backend.test
import pytest

from axc.sim.onnx_backend import AxcBackend
from tests.conftest import LIGHT_MODELS

SUPPORTED = [
    "conv",
    "basic_conv",
    "gemm",
    "matmul",
    "add",
    "sum",
    "sub",
    "mul",
    "div",
    "relu",
    "leakyrelu",
    "clip",
    "sigmoid",
    "tanh",
    "hardsigmoid",
    "hardswish",
    "maxpool",
    "averagepool",
    "globalaveragepool",
    "globalmaxpool",
    "flatten",
    "reshape",
    "transpose",
    "concat",
    "split",
    "slice",
    "constant_pad",
    "edge_pad",
    "reflect_pad",
    "wrap_pad",
    "squeeze",
    "unsqueeze",
    "batchnorm",
    "dropout",
    "identity",
    "softmax",
    "lrn",
    "constant",
    "constantofshape",
    "shape",
    "gather",
    "quantizelinear",
    "dequantizelinear",
    "qlinearconv",
    "qlinearmatmul",
    "convinteger",
    "matmulinteger",
]

EXCLUDED = {
    r"_expanded": "function bodies use ops outside axc's set",
    r"^test_gather_elements": "GatherElements is another op",
    r"^test_split_to_sequence": "SplitToSequence produces a sequence",
    r"^test_identity_(sequence|opt)": "sequence and optional types",
    r"^test_maxpool_with_argmax": "the Indices output of MaxPool",
    r"training_mode": "training-mode BatchNormalization",
    r"quantizelinear_(e4m3fn|e5m2|float4e2m1|u?int4|u?int2)": "float8, float4 and packed "
    "int4/int2 element types (axc stores integers of any width in whole bytes)",
    r"quantizelinear_blocked": "blocked quantization (block_size)",
}

backend_test = onnx.backend.test.BackendTest(AxcBackend, __name__)
backend_test.include(rf"^test_({'|'.join(SUPPORTED)})(_.*)?_cpu$")
backend_test.include(rf"^test_({'|'.join(LIGHT_MODELS)})_cpu$")
for pattern in EXCLUDED:
    backend_test.exclude(pattern)

globals().update(backend_test.test_cases)


@pytest.mark.slow
def test_conformance_summary(record_property: Callable[[str, object], None]) -> None:
    """Run the whole selection once more as one suite and print the count."""
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for case in backend_test.test_cases.values():
        suite.addTests(loader.loadTestsFromTestCase(case))
    with open(os.devnull, "w") as sink:
        result = unittest.TextTestRunner(verbosity=0, stream=sink).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    # printed at the end of the run by tests/conftest.py, from any worker
    record_property(
        "summary",
        f"ONNX conformance against axc: {passed} passed, {failed} failed "
        f"({len(result.skipped)} cases of unsupported ops or opsets not selected)",
    )
    names = [re.sub(r"^.*\.", "", str(t[0])) for t in result.failures + result.errors]
    assert failed == 0, names
    assert passed >= 200
