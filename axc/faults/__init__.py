"""Fault injection: fault models and sites, campaign planning, statistics, runners."""

from axc.faults.model import (
    FAULT_DTYPE,
    MODELS,
    SITES,
    Auto,
    BitFlip,
    FaultGroup,
    RandomValue,
    Site,
    StuckAt,
    generate,
    read_faults,
    write_faults,
)
from axc.faults.stats import quantile, sample_size, wilson

__all__ = [
    "FAULT_DTYPE",
    "MODELS",
    "SITES",
    "Auto",
    "BitFlip",
    "FaultGroup",
    "RandomValue",
    "Site",
    "StuckAt",
    "generate",
    "quantile",
    "read_faults",
    "sample_size",
    "wilson",
    "write_faults",
]
