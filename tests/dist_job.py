"""A torchrun job for tests/test_distributed.py: each rank meters one window with FakeSensors
standing in for its host (cpu, ram) and two GPUs, and rank 0 writes the gathered job.

``python -m torch.distributed.run --standalone --nproc-per-node 2 dist_job.py OUT [--hosts]``:
``--hosts`` gives each rank its own host id (a two-node layout on one machine); ``--fail``
makes rank 1's ``gpu:1`` sensor fail inside the window. Each rank
writes ``OUT/rank-<r>.json`` (its own measurement and what it reads); rank 0 also writes
``OUT/job.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch.distributed as dist

from wattprint import EnergyMeter
from wattprint.sensors import FakeSensor

POWER_W = {"cpu": 10.0, "ram": 3.0, "gpu:0": 100.0, "gpu:1": 200.0}


def main() -> None:
    out = Path(sys.argv[1])
    hosts = "--hosts" in sys.argv
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    fail = "--fail" in sys.argv and rank == 1
    sensors = [FakeSensor(w, component=c, name=f"fake-{c}",
                          fail_after_s=0.1 if fail and c == "gpu:1" else None)
               for c, w in POWER_W.items()]
    meter = EnergyMeter(sensors, sync="dist", country="FR", sample_hz=50,
                        host_id=f"node-{rank}" if hosts else "node")
    with meter.window("step") as w:
        time.sleep(0.4 if rank == 0 else 0.2)  # the barrier at the end waits for rank 0
    job = meter.gather(w.measurement)
    assert w.measurement is not None
    mine = {"rank": meter.rank._asdict() if meter.rank else None,
            "components": sorted(meter.components),
            "measurement": w.measurement.to_dict()}
    (out / f"rank-{rank}.json").write_text(json.dumps(mine))
    if rank == 0:
        assert job is not None
        (out / "job.json").write_text(json.dumps(job.to_dict()))
    else:
        assert job is None
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
