"""Benchmark P2: the Toucan connector's Dropzone upload of a large file to its simulator.

    .venv/bin/python bench/toucan_upload.py [--size 2G]

It writes a SIZE file (default 2 GiB), starts the simulators (``tests/simulator.py``),
runs the connector's upload step in a child process and prints that process's peak RSS
and throughput, and the sha256 the simulator computed over the assembled chunks.
Goals: peak RSS < 100 MB (each 2 MB chunk streams from the file through a bounded reader)
and the sha256 the simulator received equals the file's. Exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.usmart_upload import mib, parse_size  # noqa: E402

BLOCK = 8 * 1024 * 1024
RSS_GOAL = 100 * 1000 * 1000  # 100 MB


def child(base_url: str, path: str) -> None:
    """In the child process: the connector's upload step only; JSON figures on stdout."""
    from pydantic import SecretStr

    from connectors.base import FilePayload, StepContext
    from connectors.toucan import ToucanConnector, ToucanCredentials, ToucanParams, ToucanTarget
    from simulators.toucan import USERS

    login, password = next(iter(USERS.items()))
    connector = ToucanConnector(
        ToucanCredentials(login=login, password=SecretStr(password)), base_url=base_url, timeout=120.0
    )
    target = ToucanTarget(small_app="demo-app", data_source="sales.csv", stage="staging")
    params = ToucanParams(operations=[])
    size = os.path.getsize(path)
    payload = FilePayload(name="sales.csv", size=size, sha256="", open=lambda: open(path, "rb"))  # noqa: SIM115
    upload_step = connector.plan(target, params)[0]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    outcome = connector.run_step(
        upload_step, StepContext(target=target, params=params, release_key="bench", file=payload)
    )
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "chunks": outcome.output.get("chunks"),
                "rss_before_kib": rss_before,
                "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def main() -> None:
    from tests.simulator import SimulatorProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="file size, e.g. 2G (default), 500M")
    args = parser.parse_args()
    size = parse_size(args.size)
    workdir = Path(tempfile.mkdtemp(prefix="toucan-bench-"))
    path = workdir / "sales.csv"
    sim = None
    try:
        print(f"Writing a {mib(size)} file to {workdir} ...", flush=True)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for offset in range(0, size, BLOCK):
                block = os.urandom(min(BLOCK, size - offset))
                f.write(block)
                digest.update(block)
        sha256 = digest.hexdigest()
        sim = SimulatorProcess(delay=0.2)
        os.sync()
        print("Connector upload (child process) ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--child", sim.url("toucan"), str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"the connector's child process failed:\n{done.stderr}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        received = sim.state("toucan")["sources"]["demo-app/staging/sales.csv"]
        peak = figures["rss_peak_kib"] * 1024
        rate = size / figures["seconds"] / 2**20
        ok_rss, ok_sha = peak < RSS_GOAL, received["sha256"] == sha256 and received["size"] == size
        print()
        print(f"File size              {mib(size)} ({size:,} bytes) in {figures['chunks']} Dropzone chunks")
        print(f"Connector upload       {figures['seconds']:.2f} s  {rate:,.1f} MiB/s")
        print(
            f"  child peak RSS       {mib(peak)} = {peak / 1e6:.1f} MB"
            f"  (goal < 100 MB: {'met' if ok_rss else 'MISSED'};"
            f" before the upload {mib(figures['rss_before_kib'] * 1024)})"
        )
        print(f"  sha256 received      {received['sha256'][:16]}…  (goal: the file's: {'met' if ok_sha else 'MISSED'})")
        if not (ok_rss and ok_sha):
            sys.exit(1)
    finally:
        if sim is not None:
            sim.reset("toucan")
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
