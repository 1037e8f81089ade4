"""Replay a recorded ``powermetrics`` plist stream, as
``powermetrics --samplers cpu_power,gpu_power,ane_power -f plist -i 100`` writes it: one XML
plist per sample, each followed by a NUL byte, on stdout.

The samples below have the keys, types and units of powermetrics' plist on an M2 Pro Mac mini
(``Mac14,12``), trimmed to these samplers (the per-cluster CPU detail cut to one cluster); the
values are a plausible inference ramp, written by hand, not a capture. The stream loops over
them, one every ``--interval`` seconds, until killed, or until ``--samples N`` have been
written; then it exits with ``--exit-code`` (as powermetrics does when it is stopped or
fails). ``--garbage`` writes a broken sample after the first one; ``--stall`` stops writing
after the samples but keeps running. Used by the tests as the ``powermetrics`` command:
``[sys.executable, "tests/powermetrics_replay.py", ...]``.
"""

from __future__ import annotations

import argparse
import sys
import time

#: (elapsed_ns, cpu mW, gpu mW, ane mW): a model's inference starting on the GPU and the ANE.
RECORDED = [
    (100_412_083, 1187.0, 41.0, 0.0),
    (100_386_250, 2431.0, 3822.0, 0.0),
    (101_022_166, 2212.0, 9645.0, 1317.0),
    (100_298_792, 2050.0, 9802.0, 1288.0),
]

SAMPLE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
<key>is_delta</key><true/>
<key>elapsed_ns</key><integer>{elapsed_ns}</integer>
<key>hw_model</key><string>Mac14,12</string>
<key>kern_osversion</key><string>23E224</string>
<key>kern_bootargs</key><string></string>
<key>kern_boottime</key><integer>1714552000</integer>
<key>timestamp</key><date>2024-05-01T10:{minute:02d}:{second:02d}Z</date>
<key>processor</key>
<dict>
<key>clusters</key>
<array>
<dict>
<key>name</key><string>E-Cluster</string>
<key>freq_hz</key><real>1588000000</real>
<key>idle_ratio</key><real>0.61</real>
</dict>
</array>
<key>ane_energy</key><integer>{ane_mj}</integer>
<key>cpu_energy</key><integer>{cpu_mj}</integer>
<key>gpu_energy</key><integer>{gpu_mj}</integer>
<key>ane_power</key><real>{ane_mw}</real>
<key>cpu_power</key><real>{cpu_mw}</real>
<key>gpu_power</key><real>{gpu_mw}</real>
<key>combined_power</key><real>{combined_mw}</real>
</dict>
<key>gpu</key>
<dict>
<key>freq_hz</key><real>1398000000</real>
<key>idle_ratio</key><real>0.12</real>
<key>gpu_energy</key><integer>{gpu_mj}</integer>
</dict>
</dict>
</plist>
"""


def sample(i: int) -> bytes:
    elapsed_ns, cpu, gpu, ane = RECORDED[i % len(RECORDED)]
    s = elapsed_ns / 1e9
    text = SAMPLE.format(
        elapsed_ns=elapsed_ns, minute=i // 600 % 60, second=i // 10 % 60,
        cpu_mw=cpu, gpu_mw=gpu, ane_mw=ane, combined_mw=cpu + gpu + ane,
        cpu_mj=round(cpu * s), gpu_mj=round(gpu * s), ane_mj=round(ane * s),
    )
    return text.encode() + b"\x00"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--garbage", action="store_true")
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--starts-file", default=None, help="append a line here at each start")
    args = parser.parse_args()
    if args.starts_file:
        with open(args.starts_file, "a") as f:
            f.write("start\n")
    out = sys.stdout.buffer
    i = 0
    while args.samples is None or i < args.samples:
        time.sleep(args.interval)
        out.write(sample(i))
        if args.garbage and i == 0:
            out.write(b"<?xml version='1.0'?><plist><dict><key>cpu_power</key>\x00")
        out.flush()
        i += 1
    if args.stall:
        time.sleep(3600)
    if args.exit_code:
        sys.stderr.write("powermetrics: replay ended on purpose\n")
    return int(args.exit_code)


if __name__ == "__main__":
    sys.exit(main())
