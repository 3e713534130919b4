"""Run SCALE-Sim v3 on GEMM shapes; executed by the SCALE-Sim virtualenv's python
(see bench/scalesim_compare.py), which reads its JSON from stdout.

    python scalesim_runner.py ROWS COLS DATAFLOW 'name,M,N,K;...'

M is output pixels, N output channels, K the reduction (SCALE-Sim's GEMM
convention). Prints {"layers": [{"name", "compute_cycles", "with_prefetch"}],
"seconds": wall time}.
"""

import csv
import json
import os
import sys
import tempfile
import time

CONFIG = """[general]
run_name = axc_compare

[architecture_presets]
ArrayHeight: {rows}
ArrayWidth: {cols}
IfmapSramSzkB: 65536
FilterSramSzkB: 65536
OfmapSramSzkB: 65536
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Dataflow: {dataflow}
Bandwidth: 10
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport: false
SparseRep: ellpack_block
OptimizedMapping: false
BlockSize: 8
RandomNumberGeneratorSeed: 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def main() -> None:
    rows, cols, dataflow, shapes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "axc.cfg")
        topology = os.path.join(tmp, "axc_gemm.csv")
        layout = os.path.join(tmp, "layout.csv")
        with open(config, "w") as f:
            f.write(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        with open(topology, "w") as f:
            f.write("Layer, M, N, K,\n")
            for item in shapes.split(";"):
                f.write(item + ",\n")  # SCALE-Sim wants the trailing comma
        with open(layout, "w") as f:
            f.write("Layer name, IFMAP SRAM Block Size, Filter SRAM Block Size,\n")
        start = time.perf_counter()
        sim = scalesim(
            save_disk_space=True,
            verbose=False,
            config=config,
            topology=topology,
            layout=layout,
            input_type_gemm=True,
        )
        out = os.path.join(tmp, "out")
        sim.run_scale(top_path=out)
        seconds = time.perf_counter() - start
        report = None
        for root, _, files in os.walk(out):
            if "COMPUTE_REPORT.csv" in files:
                report = os.path.join(root, "COMPUTE_REPORT.csv")
        layers = []
        with open(report) as f:
            for row in csv.DictReader(f, skipinitialspace=True):
                row = {k.strip(): v.strip() for k, v in row.items() if k}
                layers.append(
                    {
                        "compute_cycles": int(float(row["Total Cycles"])),
                        "with_prefetch": int(float(row["Total Cycles (incl. prefetch)"])),
                    }
                )
    names = [s.split(",")[0] for s in shapes.split(";")]
    for name, layer in zip(names, layers, strict=True):
        layer["name"] = name
    print(json.dumps({"layers": layers, "seconds": seconds}))


if __name__ == "__main__":
    main()
