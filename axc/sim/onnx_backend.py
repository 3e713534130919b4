"""axc's float executor as an ONNX backend (``onnx.backend.base.Backend``).

This lets ONNX's own conformance suite (``onnx.backend.test.BackendTest``)
run against the real import path: ONNX -> axc IR -> executor.

axc's IR has static shapes and constant parameters. Conformance models often
feed such operands (Reshape's shape, Pad's pads, Clip's bounds, BatchNorm's
statistics) as graph inputs. When import reports that an operand must be
constant and that operand is a graph input, the backend specializes the
model on that input's value at ``run`` time, as a compiler specializes on
constants, and caches one import per distinct value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from axc.errors import NeedsConstantError
from axc.frontend import import_model
from axc.frontend.load import MAX_OPSET, MIN_OPSET
from axc.sim.executor import Executor

__all__ = ["AxcBackend", "AxcRep"]


class AxcRep(BackendRep):
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        initializers = {t.name for t in model.graph.initializer}
        self.inputs = [i for i in model.graph.input if i.name not in initializers]
        self._cache: dict[bytes, Executor] = {}
        self.specialized: set[str] = set()  # inputs that import needs as constants

    def _executor(self, arrays: Sequence[np.ndarray]) -> Executor:
        by_name = {info.name: a for info, a in zip(self.inputs, arrays, strict=True)}
        while True:
            bind = {name: by_name[name] for name in sorted(self.specialized)}
            key = b"".join(
                name.encode() + a.tobytes() + str(a.shape).encode() for name, a in bind.items()
            )
            if key in self._cache:
                return self._cache[key]
            try:
                self._cache[key] = Executor(import_model(self.model, bind=bind))
            except NeedsConstantError as exc:
                if exc.tensor not in by_name or exc.tensor in self.specialized:
                    raise
                self.specialized.add(exc.tensor)

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        arrays = [
            np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])
        ]
        executor = self._executor(arrays)
        graph = executor.graph
        feeds = {
            info.name: a
            for info, a in zip(self.inputs, arrays, strict=True)
            if info.name in graph.inputs
        }
        out = executor.run(feeds)
        return tuple(out[o.name] for o in self.model.graph.output)


class AxcBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> AxcRep:
        super().prepare(model, device, **kwargs)
        rep = AxcRep(model)
        try:
            rep._cache[b""] = Executor(import_model(model))
        except NeedsConstantError as exc:
            rep.specialized.add(exc.tensor)
        return rep

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> bool:
        """Models outside the supported opset range are skipped, not failed."""
        versions = {o.domain: o.version for o in model.opset_import}
        version = versions.get("", versions.get("ai.onnx", 0))
        return MIN_OPSET <= version <= MAX_OPSET

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
