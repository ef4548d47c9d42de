"""Benchmarks P1 and P3: resumable (tus) uploads through the production app server.

    .venv/bin/python bench/tus_upload.py [--size 2G] [--resume-size 1G] [--storage fs|s3] [--chunk 8M]

It creates a database of its own (``portal_bench_upl``) and starts the web tier as it is
deployed: deploy/web.sh (gunicorn, config/gunicorn.py: the app preloaded in the arbiter, one
gthread worker), production settings, and a virtualenv with requirements/production.txt only
(var/venv-production, built on the first run), as the image has it. S3 storage is moto in
server mode on loopback. Then:

P1  uploads a SIZE file through the browser's path: chromium (Playwright) on the upload
    page, Uppy's tus plugin in chunks of CHUNK. Beside it, in the same run, curl sends the
    same bytes to the same server (one tus PATCH). Goals: peak RSS < 100 MB for each web process
    (the arbiter and the worker, printed apart),
    browser throughput >= 0.8 x curl's, temp disk on the web host <= 2 chunks (sampled:
    files under the worker's TMPDIR, deleted ones included), the stored sha256 matches.
P3  sends a RESUME_SIZE file in CHUNK PATCHes, closes the connection in the middle of the
    chunk at 50 %, then resumes with tuspy (HEAD, then the rest). Goals: bytes re-sent
    <= 1 chunk, the stored sha256 matches.

It prints each figure with its goal beside it and exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.usmart_upload import mib, parse_size  # noqa: E402

DB = "portal_bench_upl"
PASSWORD = "bench-password"  # noqa: S105 - a throwaway user in a throwaway database
RSS_GOAL = 100 * 1000 * 1000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = 8 * 1024 * 1024
    with open(path, "wb") as f:
        for offset in range(0, size, block):
            data = os.urandom(min(block, size - offset))
            f.write(data)
            digest.update(data)
    return digest.hexdigest()


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def temp_bytes(pids: list[int], tmpdir: Path) -> int:
    """Bytes of the files under ``tmpdir`` that the processes hold open (deleted ones too) or that exist."""
    seen: dict[tuple[int, int], int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
                if target.startswith(str(tmpdir)):
                    st = os.stat(fd)
                    seen[(st.st_dev, st.st_ino)] = st.st_size
            except OSError:
                continue
    for path in tmpdir.rglob("*"):
        try:
            st = path.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
        except OSError:
            continue
    return sum(seen.values())


class Sampler(threading.Thread):
    def __init__(self, master: int, tmpdir: Path):
        super().__init__(daemon=True)
        self.master, self.tmpdir, self.peak_temp, self.running = master, tmpdir, 0, True

    def run(self) -> None:
        while self.running:
            pids = [self.master, *children(self.master)]
            self.peak_temp = max(self.peak_temp, temp_bytes(pids, self.tmpdir))
            time.sleep(0.05)


def production_venv() -> Path:
    """A virtualenv with requirements/production.txt only, as the image installs it (Dockerfile).

    The web process measured is the deployed one: .venv also holds the test tools (rich, requests,
    jinja2, pygments), which structlog and DRF import whenever they are installed. Built once, and
    again when the production requirements change."""
    venv = ROOT / "var" / "venv-production"
    requirements = ROOT / "requirements" / "production.txt"
    want = hashlib.sha256(requirements.read_bytes()).hexdigest()
    stamp = venv / ".requirements.sha256"
    if not stamp.exists() or stamp.read_text() != want:
        print(f"Installing requirements/production.txt into {venv.relative_to(ROOT)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        stamp.write_text(want)
    return venv


class Portal:
    """The database, a user with a dataset and a token, and the web tier as deployed: deploy/web.sh
    (gunicorn with config/gunicorn.py: preloaded app, gthread workers), production settings, the
    production requirements only, one worker process."""

    def __init__(self, workdir: Path, chunk: int, s3_env: dict[str, str] | None):
        server = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal").rsplit("/", 1)[0]
        import psycopg
        from cryptography.fernet import Fernet

        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {DB}")
        venv = production_venv()
        self.python = str(venv / "bin" / "python")
        self.tmpdir = workdir / "web-tmp"
        self.tmpdir.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PORTAL_", "GUNICORN_"))}
        self.env = {
            **inherited,
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "bench-" + Fernet.generate_key().decode() + Fernet.generate_key().decode(),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",  # plain HTTP on loopback
            "DJANGO_STATIC_ROOT": str(workdir / "static"),
            "DJANGO_STATICFILES_BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
            "DATABASE_URL": f"{server}/{DB}",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"),
            "PORTAL_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
            "PORTAL_MEDIA_ROOT": str(workdir / "media"),
            "PORTAL_UPLOAD_CHUNK_BYTES": str(chunk),
            "PORTAL_UPLOAD_MAX_BYTES": str(6 * 1024**3),
            "TMPDIR": str(self.tmpdir),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": "1",
            "GUNICORN_TIMEOUT": "600",  # curl's one PATCH of the whole file
            **(s3_env or {}),
        }
        subprocess.run([self.python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        subprocess.run(
            [self.python, "manage.py", "collectstatic", "--no-input", "-v0"], cwd=ROOT, env=self.env, check=True
        )
        script = (
            "from django.contrib.auth import get_user_model\n"
            "from portal.models import Team, Membership, Dataset\n"
            "from portal import tokens\n"
            f"u = get_user_model().objects.create_user('bench', password='{PASSWORD}')\n"
            "t = Team.objects.create(name='Bench')\n"
            "Membership.objects.create(team=t, user=u, role='operator')\n"
            "d = Dataset.objects.create(team=t, name='Bench')\n"
            "print(d.pk, tokens.token_create(user=u, name='bench')[1])\n"
        )
        out = subprocess.run(
            [self.python, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        dataset, self.key = out.stdout.decode().split()[-2:]
        self.dataset = int(dataset)
        self.gunicorn = subprocess.Popen(
            [str(ROOT / "deploy" / "web.sh")],
            cwd=ROOT,
            env=self.env,
            stdout=open(workdir / "gunicorn.log", "w"),  # noqa: SIM115 - lives as long as the server
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start; see gunicorn.log")

    def uploads(self) -> dict[str, str]:
        """original name -> sha256 of the stored uploads."""
        script = (
            "from portal.models import Upload\n"
            "for u in Upload.objects.all(): print('UPLOAD', u.original_name, u.sha256)\n"
        )
        out = subprocess.run(
            [self.python, "manage.py", "shell", "-c", script],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )
        rows = [line.split()[1:] for line in out.stdout.decode().splitlines() if line.startswith("UPLOAD ")]
        return {name: sha for name, sha in rows}

    def web_peak_rss(self) -> int:
        """The largest peak RSS of the web processes: gunicorn's arbiter (it loads the app, then
        forks) and its worker (it serves the requests)."""
        return max(self.peaks().values())

    def peaks(self) -> dict[str, int]:
        arbiter = self.arbiter()
        return {"arbiter": vm_hwm(arbiter), **{f"worker {pid}": vm_hwm(pid) for pid in children(arbiter)}}

    def describe_peaks(self) -> str:
        peaks = self.peaks()
        worker = max((rss for name, rss in peaks.items() if name.startswith("worker")), default=0)
        return f"worker {worker / 1e6:.1f} MB, arbiter {peaks['arbiter'] / 1e6:.1f} MB"

    def arbiter(self) -> int:
        """deploy/web.sh execs gunicorn: the shell's pid is gunicorn's arbiter."""
        return self.gunicorn.pid

    def tus_create(self, name: str, size: int) -> str:
        import base64

        import httpx

        meta = ",".join(
            f"{k} {base64.b64encode(v.encode()).decode()}"
            for k, v in {"dataset": str(self.dataset), "filename": name}.items()
        )
        answer = httpx.post(
            f"{self.url}/api/v1/uploads/tus/",
            headers={
                "Authorization": f"Bearer {self.key}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(size),
                "Upload-Metadata": meta,
            },
        )
        answer.raise_for_status()
        return answer.headers["Location"]

    def stop(self) -> None:
        self.gunicorn.terminate()
        try:
            self.gunicorn.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.gunicorn.kill()


def curl_upload(portal: Portal, path: Path, size: int) -> float:
    location = portal.tus_create("curl.csv", size)
    done = subprocess.run(
        [
            "curl", "-sS", "-X", "PATCH", "-T", str(path), "-o", str(path.parent / "curl.out"),
            "-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: application/offset+octet-stream",
            "-H", "Upload-Offset: 0", "-H", f"Authorization: Bearer {portal.key}", "-H", "Expect:",
            "-w", "%{http_code} %{time_total}", location.rstrip("/"),  # with the slash curl -T appends the file name
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    code, seconds = done.stdout.split()
    if code != "204":
        raise RuntimeError(f"curl's PATCH answered {code}: {(path.parent / 'curl.out').read_text()[:300]}")
    return float(seconds)


def browser_upload(portal: Portal, path: Path, timeout_s: float) -> float:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(base_url=portal.url)
        page.goto("/login/")
        page.fill("#id_username", "bench")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/")
        page.goto(f"/datasets/{portal.dataset}/upload/")
        page.wait_for_selector(".uppy-Dashboard-input", state="attached")
        started = time.perf_counter()
        page.set_input_files(".uppy-Dashboard-input >> nth=0", str(path))
        status = page.locator(f"#tus-files tr[data-name='{path.name}'] .status")
        expect(status).to_have_text("stored", timeout=timeout_s * 1000)
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def cut_and_resume(portal: Portal, path: Path, size: int, chunk: int) -> tuple[int, int]:
    """P3: PATCHes of ``chunk`` until 50 %, a connection closed mid-chunk, then tuspy resumes.
    Returns (bytes the client sent in all, the offset the server had after the cut)."""
    from tusclient.client import TusClient

    location = portal.tus_create(path.name, size)
    parts = urlsplit(location)
    sent = 0
    with open(path, "rb") as f:
        offset = 0
        while True:
            data = f.read(chunk)
            cut = offset + len(data) > size // 2
            head = (
                f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
                f"Authorization: Bearer {portal.key}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Upload-Offset: {offset}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            ).encode()
            with socket.create_connection((parts.hostname, parts.port)) as sock:
                body = data[: len(data) // 2] if cut else data
                sock.sendall(head + body)
                sent += len(body)
                if cut:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    break  # closed with a reset, in the middle of the chunk
                answer = sock.makefile("rb").readline()
                if b" 204 " not in answer:
                    raise RuntimeError(f"PATCH at {offset}: {answer!r}")
            offset += len(data)
    with open(path, "rb") as f:
        uploader = TusClient(location.rsplit("/api/", 1)[0] + "/api/v1/uploads/tus/",
                             headers={"Authorization": f"Bearer {portal.key}"}).uploader(
            file_stream=f, chunk_size=chunk, url=location
        )  # fmt: skip
        resumed_at = uploader.offset
        uploader.upload()
    sent += size - resumed_at
    return sent, resumed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="P1 file size (default 2G)")
    parser.add_argument("--resume-size", default="1G", help="P3 file size (default 1G)")
    parser.add_argument("--storage", choices=["fs", "s3"], default="fs")
    parser.add_argument("--chunk", default="8M", help="tus chunk size, PORTAL_UPLOAD_CHUNK_BYTES (default 8M)")
    parser.add_argument("--skip", choices=["p1", "p3"], action="append", default=[])
    args = parser.parse_args()
    size, resume_size, chunk = parse_size(args.size), parse_size(args.resume_size), parse_size(args.chunk)
    workdir = Path(tempfile.mkdtemp(prefix="tus-bench-"))
    moto = portal = None
    misses: list[str] = []

    def report(label: str, value: str, goal: str, ok: bool) -> None:
        print(f"{label:<34} {value:<28} goal {goal:<22} {'met' if ok else 'MISSED'}", flush=True)
        if not ok:
            misses.append(label)

    try:
        bucket = None
        if args.storage == "s3":
            from tests.s3 import S3Server

            bucket = "portal-bench"
            moto = S3Server(bucket=bucket)
        portal = Portal(workdir, chunk, moto.env() if moto else None)
        print(f"Portal under gunicorn at {portal.url}, storage {args.storage}, chunk {mib(chunk)}", flush=True)
        import httpx

        for page in ("/login/", "/api/v1/uploads/tus/"):  # load the whole portal once: its idle size
            httpx.request("OPTIONS" if "tus" in page else "GET", portal.url + page)
        print(f"  web peak RSS before any upload: {portal.describe_peaks()} (Django, DRF, Celery client...)")
        if "p1" not in args.skip:
            path = workdir / "browser.csv"
            print(f"P1: writing {mib(size)} ...", flush=True)
            sha = write_file(path, size)
            os.sync()
            sampler = Sampler(portal.gunicorn.pid, portal.tmpdir)
            sampler.start()
            curl_s = curl_upload(portal, path, size)
            curl_rate = size / curl_s / 2**20
            print(f"  curl, one PATCH                  {curl_s:.1f} s  {curl_rate:.1f} MiB/s", flush=True)
            browser_s = browser_upload(portal, path, timeout_s=max(600.0, 20 * curl_s))
            sampler.running = False
            sampler.join()
            rate = size / browser_s / 2**20
            stored = portal.uploads()
            print(f"  browser, Uppy + tus              {browser_s:.1f} s  {rate:.1f} MiB/s", flush=True)
            rss = portal.web_peak_rss()
            report("P1 web peak RSS", portal.describe_peaks(), "< 100 MB each", rss < RSS_GOAL)
            report("P1 browser / curl throughput", f"{rate / curl_rate:.2f}", ">= 0.80", rate >= 0.8 * curl_rate)
            report("P1 temp disk on the web host", mib(sampler.peak_temp), f"<= {mib(2 * chunk)}",
                   sampler.peak_temp <= 2 * chunk)  # fmt: skip
            report("P1 sha256 stored (browser, curl)", "matches" if stored.get("browser.csv") == sha and
                   stored.get("curl.csv") == sha else "DIFFERS", "matches", stored.get("browser.csv") == sha
                   and stored.get("curl.csv") == sha)  # fmt: skip
            path.unlink()
        if "p3" not in args.skip:
            path = workdir / "resume.csv"
            print(f"P3: writing {mib(resume_size)} ...", flush=True)
            sha = write_file(path, resume_size)
            sent, resumed_at = cut_and_resume(portal, path, resume_size, chunk)
            resent = sent - resume_size
            print(f"  cut in the chunk at 50 %; the server had {resumed_at:,} bytes; resumed with tuspy", flush=True)
            report("P3 bytes re-sent", f"{resent:,} B", f"<= {chunk:,} B (1 chunk)", resent <= chunk)
            ok = portal.uploads().get("resume.csv") == sha
            report("P3 sha256 stored", "matches" if ok else "DIFFERS", "matches", ok)
            rss = portal.web_peak_rss()
            report("P3 web peak RSS", portal.describe_peaks(), "< 100 MB each", rss < RSS_GOAL)
    finally:
        if portal is not None:
            portal.stop()
        if moto is not None:
            moto.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if misses:
        sys.exit(f"missed: {', '.join(misses)}")


if __name__ == "__main__":
    main()
