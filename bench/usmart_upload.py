"""Benchmark: the uSmart connector's streamed signed PUT against ``curl -T``.

    .venv/bin/python bench/usmart_upload.py [SIZE]      # SIZE like 2G (default), 500M, 1048576

It writes a SIZE file in chunks to a temporary directory, starts the simulators
(``tests/simulator.py``), uploads the file with the connector's upload step in a child
process and reports that process's peak RSS and throughput, then PUTs the same file with
``curl -T`` to a fresh signed URL of the same simulator and prints both throughputs and
their ratio. Both uploads end in the same server, which streams to disk and hashes (MD5,
for the ETag), so the ratio compares the clients. A benchmark, not a test: it asserts
that every byte arrived and that the sha256 the simulator received is the file's (exit 1 if not).
"""

from __future__ import annotations

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

CHUNK = 8 * 1024 * 1024
UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def simulator_peak_rss(pid: int) -> int | None:
    """The simulator process's peak RSS in bytes (VmHWM, Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def child(base_url: str, path: str) -> None:
    """Run in the child process: the connector's upload then revision step; JSON figures on stdout."""
    from pydantic import SecretStr

    from connectors.base import FilePayload, StepContext
    from connectors.usmart.connector import UsmartConnector
    from connectors.usmart.schemas import UsmartCredentials, UsmartTarget
    from simulators.usmart import DEMO_DATASET, ORG_GUID, READINGS_FILE

    size = os.path.getsize(path)
    credentials = UsmartCredentials(
        organisation_guid=ORG_GUID, api_key_id="usmart-demo-key-id", api_key_secret=SecretStr("usmart-demo-key-secret")
    )
    connector = UsmartConnector(credentials, base_url=base_url, timeout=60.0)
    target = UsmartTarget(dataset_guid=DEMO_DATASET, file_guid=READINGS_FILE, file_name="bench.bin")
    params = UsmartConnector.Params()
    payload = FilePayload(name="bench.bin", size=size, sha256="", open=lambda: open(path, "rb"))  # noqa: SIM115 - the connector closes the stream
    upload_step, revision_step = connector.plan(target, params)[:2]

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    upload = connector.run_step(
        upload_step, StepContext(target=target, params=params, release_key="bench", file=payload)
    )
    seconds = time.perf_counter() - started
    # What the simulator received, read before the revision consumes the signed upload.
    import httpx

    received = [u for u in httpx.get(f"{base_url}/_sim/state").json()["uploads"].values() if u["stored"]]
    revision = connector.run_step(
        revision_step,
        StepContext(
            target=target,
            params=params,
            release_key="bench",
            file=payload,
            results={"put_request": dict(upload.output)},
        ),
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                "bytes": size,
                "rss_before_upload_kib": rss_before,
                "rss_peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "attempts": upload.output["attempts"],
                "revision": revision.output["revision"],
                "received_sha256": received[0]["sha256"] if len(received) == 1 else None,
            }
        )
    )


def main() -> None:
    import httpx

    from simulators.usmart import DEMO_DATASET, ORG_GUID, READINGS_FILE
    from tests.simulator import SimulatorProcess

    size = parse_size(sys.argv[1]) if len(sys.argv) > 1 else 2 * 1024**3
    workdir = Path(tempfile.mkdtemp(prefix="usmart-bench-"))
    path = workdir / "bench.bin"
    sim = None
    try:
        print(f"Writing a {mib(size)} file to {workdir} ...", flush=True)
        block = os.urandom(CHUNK)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for offset in range(0, size, CHUNK):
                f.write(block[: min(CHUNK, size - offset)])
                digest.update(block[: min(CHUNK, size - offset)])
        sha256 = digest.hexdigest()

        sim = SimulatorProcess(delay=0.2)
        base_url = sim.url("usmart")

        print("Connector upload (child process) ...", flush=True)
        os.sync()  # start each run with no dirty pages left to write back
        done = subprocess.run(
            [sys.executable, __file__, "--child", base_url, str(path)], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"the connector's child process failed:\n{done.stderr}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        # Only the waited-for child counts here: the simulator process is still running.
        children_peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        stored = {f["fileGUID"]: f for f in sim.state("usmart")["datasets"][DEMO_DATASET]["files"]}[READINGS_FILE]
        assert stored["fileSize"] == size, f"the simulator stored {stored['fileSize']} bytes, not {size}"
        sha_ok = figures["received_sha256"] == sha256
        sim_peak = simulator_peak_rss(sim.process.pid)
        sim.reset("usmart")  # drop the first copy so curl's run starts from the same state
        os.sync()

        print("curl -T to a fresh signed URL ...", flush=True)
        put = httpx.post(
            f"{base_url}/org/{ORG_GUID}/s3:generatePutRequest",
            json={"fileName": "bench.bin"},
            headers={"api-key-id": "usmart-demo-key-id", "api-key-secret": "usmart-demo-key-secret"},
        ).json()["result"]
        curl = subprocess.run(
            # "Expect:" drops curl's 100-continue handshake: httpx sends none either.
            [
                "curl",
                "-sS",
                "-T",
                str(path),
                "-H",
                f"Content-Type: {put['contentType']}",
                "-H",
                "Expect:",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_upload} %{time_total}",
                put["signedRequest"],
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        code, sent, curl_seconds = curl.stdout.split()
        assert code == "200" and int(float(sent)) == size, f"curl: HTTP {code}, {sent} bytes sent"
        assert sim.state("usmart")["uploads"][put["reference"]]["size"] == size
        curl_sha_ok = sim.state("usmart")["uploads"][put["reference"]]["sha256"] == sha256

        sim_peak = max(sim_peak or 0, simulator_peak_rss(sim.process.pid) or 0) or None
        connector_rate = size / figures["seconds"] / 2**20
        curl_rate = size / float(curl_seconds) / 2**20
        print()
        print(f"File size                  {mib(size)} ({size:,} bytes)")
        print(
            f"Connector upload           {figures['seconds']:.2f} s  {connector_rate:,.1f} MiB/s"
            f"  (signed URL attempts: {figures['attempts']}, revision {figures['revision']})"
        )
        peak, before = figures["rss_peak_kib"] * 1024, figures["rss_before_upload_kib"] * 1024
        print(
            f"  child peak RSS           {mib(peak)}  (before the upload: {mib(before)};"
            f" RUSAGE_CHILDREN: {mib(children_peak_kib * 1024)})"
        )
        print(f"curl -T                    {float(curl_seconds):.2f} s  {curl_rate:,.1f} MiB/s")
        print(f"Connector / curl           {connector_rate / curl_rate:.2f}")
        if sim_peak is not None:
            print(f"Simulator peak RSS         {mib(sim_peak)}  (both PUTs streamed to disk)")
        print(
            f"sha256 received            connector {'matches' if sha_ok else 'DIFFERS'},"
            f" curl {'matches' if curl_sha_ok else 'DIFFERS'}  (goal: both match)"
        )
        if not (sha_ok and curl_sha_ok):
            sys.exit(1)
    finally:
        if sim is not None:
            sim.reset("usmart")  # frees the simulator's copies
            sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
