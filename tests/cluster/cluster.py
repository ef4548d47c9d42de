"""The multi-host rehearsal on one machine: every tier in processes of its own, on loopback.

nginx (one port, ``client_max_body_size 10m``) in front of two gunicorn instances; two Celery
workers, each in an empty working directory of its own with no access to the web's files;
one beat; PostgreSQL (the test database); a Redis server of its own; moto as the S3 server;
the platform simulators. Each tier starts through the same entry point that compose.yaml
runs (``COMMANDS``; tests/cluster/test_compose.py checks that they agree) with production
settings, configured only by environment variables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..leftovers import die_with_parent
from ..simulator import ROOT, free_port

# The entry points, by compose service. compose.yaml must name the same commands.
COMMANDS = {
    "migrate": "deploy/migrate.sh",
    "web": "deploy/web.sh",
    "worker": "deploy/worker.sh",
    "beat": "deploy/beat.sh",
}
NGINX_TEMPLATE = "deploy/nginx/portal.conf.template"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Tier:
    """One process (and its children, in a session of their own so a kill reaches them all)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    workdir: Path

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean shutdown, as when a host dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    base: Path
    env: dict[str, str]
    url: str = ""
    tiers: dict[str, Tier] = field(default_factory=dict)

    def start(
        self, name: str, argv: list[str], *, env: dict[str, str] | None = None, workdir: Path | None = None
    ) -> Tier:
        workdir = workdir or (self.base / name)
        workdir.mkdir(parents=True, exist_ok=True)
        log = self.base / f"{name}.log"
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env={**self.env, **(env or {})},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # dies with this pytest (started from its main thread)
        )
        tier = Tier(name, process, log, workdir)
        self.tiers[name] = tier
        return tier

    def run(self, argv: list[str], *, timeout: float = 120) -> None:
        result = subprocess.run(argv, cwd=self.base, env=self.env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")

    def logs(self) -> str:
        return "\n".join(f"===== {name}\n{tier.text()[-3000:]}" for name, tier in self.tiers.items())

    def stop(self) -> None:
        for tier in reversed(list(self.tiers.values())):
            tier.stop()


def nginx_config(base: Path, listen: int, upstreams: list[int]) -> Path:
    """The server block from deploy/nginx (as compose's nginx renders it) inside a main file for this prefix."""
    server = (ROOT / NGINX_TEMPLATE).read_text()
    server = server.replace("${NGINX_LISTEN}", f"127.0.0.1:{listen}")
    server = server.replace(
        "${NGINX_UPSTREAMS}",
        "\n    ".join(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;" for port in upstreams),
    )
    for folder in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (base / folder).mkdir(parents=True, exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    main = f"""
{user}
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    include {base}/portal.conf;
}}
"""
    (base / "portal.conf").write_text(server)
    (base / "nginx.conf").write_text(main)
    return base / "nginx.conf"


def wait_http(url: str, *, timeout: float, tier: Tier | None = None, status: int = 200) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if tier is not None and tier.process.poll() is not None:
            raise RuntimeError(f"{tier.name} exited:\n{tier.text()[-3000:]}")
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return response
            last = f"{response.status_code} {response.text[:500]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer {status} in {timeout} s: {last}")


def start_cluster(*, base: Path, database_url: str, s3_env: dict[str, str], credential_keys: list[str]) -> Cluster:
    """Start every tier and wait until /readyz answers 200 through the proxy."""
    began = time.monotonic()
    redis_port, proxy_port = free_port(), free_port()
    web_ports = [free_port(), free_port()]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PORTAL_", "GUNICORN_", "CELERY_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        {
            # The code is found through PYTHONPATH (the entry points set it); gunicorn and celery on PATH.
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": "rehearsal-" + "x" * 50,
            # The platforms (simulators) listen on loopback here: allow it, as a deployment would list
            # an internal platform's network.
            "PORTAL_OUTBOUND_ALLOW": "127.0.0.0/8",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{proxy_port}",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_COOKIES": "false",  # plain HTTP on loopback
            "DJANGO_STATIC_ROOT": str(base / "static"),
            "DJANGO_STATICFILES_BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
            "PORTAL_TRUSTED_PROXIES": "127.0.0.1",
            "DATABASE_URL": database_url,
            "CONN_MAX_AGE": "0",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PORTAL_CREDENTIAL_KEYS": ",".join(credential_keys),
            # Engine timings short enough for a test run (production defaults are minutes).
            "PORTAL_POLL_INITIAL_SECONDS": "0.5",
            "PORTAL_POLL_MAX_SECONDS": "1",
            "PORTAL_RETRY_BASE_SECONDS": "0.5",
            "PORTAL_RETRY_MAX_SECONDS": "2",
            "PORTAL_LEASE_SECONDS": "20",
            "PORTAL_SWEEP_SECONDS": "2",
            "PORTAL_SWEEP_GRACE_SECONDS": "2",
            "PORTAL_HTTP_TIMEOUT_SECONDS": "60",
            "PORTAL_HEARTBEAT_SECONDS": "2",
            "PORTAL_BEAT_LOCK_SECONDS": "6",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_THREADS": "4",
            "GUNICORN_TIMEOUT": "180",
            "GUNICORN_FORWARDED_ALLOW_IPS": "127.0.0.1",
            **s3_env,
        }
    )
    base.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(base=base, env=env, url=f"http://127.0.0.1:{proxy_port}")
    try:
        redis = cluster.start(
            "redis",
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(redis_port), "ping"], capture_output=True).stdout.strip() != b"PONG"
        ):
            if time.monotonic() > deadline or redis.process.poll() is not None:
                raise RuntimeError("redis-server did not start:\n" + redis.text())
            time.sleep(0.1)
        cluster.run([str(ROOT / COMMANDS["migrate"])])
        # The image runs collectstatic when it is built (Dockerfile); the rehearsal does it once here.
        cluster.run(["python", str(ROOT / "manage.py"), "collectstatic", "--no-input", "-v0"], timeout=300)
        print(f"migrate and collectstatic: {time.monotonic() - began:.1f} s")
        for index, port in enumerate(web_ports, 1):
            cluster.start(f"web{index}", [str(ROOT / COMMANDS["web"])], env={"GUNICORN_BIND": f"127.0.0.1:{port}"})
        for index in (1, 2):
            # An empty working directory, its own temporary folder and media root: nothing of the web's.
            workdir = base / f"worker{index}"
            (workdir / "tmp").mkdir(parents=True)
            cluster.start(
                f"worker{index}",
                [str(ROOT / COMMANDS["worker"])],
                env={
                    "CELERY_HOSTNAME": f"worker{index}@rehearsal",
                    "TMPDIR": str(workdir / "tmp"),
                    "PORTAL_MEDIA_ROOT": str(workdir / "media"),
                },
                workdir=workdir,
            )
        cluster.start("beat", [str(ROOT / COMMANDS["beat"])])
        conf = nginx_config(base / "nginx", proxy_port, web_ports)
        cluster.start("nginx", [NGINX, "-p", str(base / "nginx"), "-c", str(conf), "-g", "daemon off;"])
        for index, port in enumerate(web_ports, 1):
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, tier=cluster.tiers[f"web{index}"])
        wait_http(cluster.url + "/readyz", timeout=90, tier=cluster.tiers["nginx"])
        print(f"cluster ready in {time.monotonic() - began:.1f} s")
    except BaseException:
        print(cluster.logs())
        cluster.stop()
        raise
    return cluster
