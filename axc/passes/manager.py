"""Running a directive program over a graph, pass by pass.

With ``AXC_VERIFY=1`` in the environment (the test suite sets it) or
``verify=True``, the IR is verified after every pass, so a pass that breaks
an invariant is caught where it happened.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from axc.directives.diagnostics import did_you_mean
from axc.errors import DirectiveError, UserError
from axc.ir import Graph, VerificationError, verify
from axc.passes.program import Program
from axc.passes.registry import PassContext, available_passes

__all__ = ["PassManager", "PassRecord"]


@dataclass(frozen=True)
class PassRecord:
    directive: str
    location: str
    pass_name: str
    targets: tuple[str, ...]
    changed: bool
    seconds: float


def _verify_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("AXC_VERIFY", "") not in ("", "0", "false", "no")


class PassManager:
    def __init__(
        self,
        *,
        verify: bool | None = None,
        dump_ir_after: Collection[str] = (),
        dump: Callable[[str, Graph], None] | None = None,
    ) -> None:
        passes = available_passes()
        for name in dump_ir_after:
            if name not in passes:
                raise UserError(
                    f"--dump-ir-after: unknown pass {name!r}"
                    f"{did_you_mean(name, passes)} (passes: {', '.join(passes)})"
                )
        self.verify = _verify_enabled(verify)
        self.dump_ir_after = set(dump_ir_after)
        self.dump = dump

    def run(
        self, graph: Graph, program: Program, ctx: PassContext | None = None
    ) -> list[PassRecord]:
        ctx = ctx or PassContext(directives_path=program.source.path)
        records = []
        for bound in program.directives:
            d = bound.directive
            location = f"{program.source.path}:{d.span.line}:{d.span.column}"
            targets = bound.targets(graph)
            start = time.perf_counter()
            ctx.location = location
            try:
                changed = bool(bound.pass_cls().run(graph, targets, bound.params, ctx))
            except DirectiveError:
                raise
            except UserError as exc:
                if str(exc).startswith(location):
                    raise
                located = UserError(f"{location}: {exc}")
                located.exit_code = exc.exit_code
                raise located from None
            seconds = time.perf_counter() - start
            if self.verify:
                try:
                    verify(graph)
                except VerificationError as exc:
                    raise VerificationError(
                        f"after pass {bound.pass_cls.name!r} ({location}): {exc}"
                    ) from None
            records.append(
                PassRecord(str(d), location, bound.pass_cls.name, tuple(targets), changed, seconds)
            )
            if bound.pass_cls.name in self.dump_ir_after and self.dump is not None:
                self.dump(f"IR after {bound.pass_cls.name} ({location})", graph)
        for name, finalize in list(ctx.finalizers.items()):
            start = time.perf_counter()
            finalize(graph, ctx)
            if self.verify:
                try:
                    verify(graph)
                except VerificationError as exc:
                    raise VerificationError(f"after lowering {name!r}: {exc}") from None
            records.append(
                PassRecord(
                    f"(lowering of {name})",
                    program.source.path,
                    name,
                    (),
                    True,
                    time.perf_counter() - start,
                )
            )
            if name in self.dump_ir_after and self.dump is not None:
                self.dump(f"IR after lowering {name}", graph)
        ctx.finalizers.clear()
        for check in ctx.checks:
            check(graph)
        ctx.checks.clear()
        return records
