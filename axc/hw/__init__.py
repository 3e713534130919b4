"""Hardware models: resource characterization by synthesis (yosys)."""

from axc.hw.synth import SynthesisResult, synthesize, yosys_version

__all__ = ["SynthesisResult", "synthesize", "yosys_version"]
