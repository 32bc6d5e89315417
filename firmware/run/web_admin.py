"""The web admin under gunicorn in its own process: one worker with threads,
so the sign-in throttle's counts are seen by every request; HTTPS with the
box's certificate unless plain HTTP was asked for development.

The environment names below are how this launcher tells the gunicorn
process (webui.wsgi) what to serve; webui reads them from here."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from firmware.config import Store
from firmware.system import tls

from .process import die_with_parent

DATA_ENV = "GATEBOX_DATA"
DEV_HTTP_ENV = "GATEBOX_DEV_HTTP"
WSGI_APP = "webui.wsgi:app"
FALLBACK_HOSTNAME = "gatebox"

log = logging.getLogger("gatebox")


def start(data_dir: Path, bind: str, port: int, dev_http: bool) -> subprocess.Popen:
    cert, key = tls.ensure_certificate(data_dir, _hostname(data_dir))
    host = f"[{bind}]" if ":" in bind else bind
    command = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "1",
               "--threads", "8", "--graceful-timeout", "5", "--access-logfile", "-",
               "--access-logformat", 'web %(h)s "%(r)s" %(s)s %(b)s %(M)sms']
    if _gunicorn_has_control_socket():
        # Nothing on the box uses it, and a fixed path in $HOME would be shared by every instance.
        command.append("--no-control-socket")
    if not dev_http:
        command += ["--certfile", str(cert), "--keyfile", str(key)]
    command.append(WSGI_APP)
    env = {**os.environ, DATA_ENV: str(data_dir), DEV_HTTP_ENV: "1" if dev_http else "0"}
    log.info("web admin on %s://%s:%s", "http" if dev_http else "https", bind, port)
    # If gatebox itself is killed outright, the kernel stops the web admin too
    # instead of leaving it serving a box that is down.
    return subprocess.Popen(command, env=env, preexec_fn=die_with_parent)


def _hostname(data_dir: Path) -> str:
    """The name for a new certificate. The web admin starts even when the
    settings cannot be read: it is where the administrator sees that."""
    try:
        store = Store(data_dir)
    except Exception as error:  # noqa: BLE001
        log.warning("web admin: settings unreadable (%s); certificate named %s", error,
                    FALLBACK_HOSTNAME)
        return FALLBACK_HOSTNAME
    try:
        return store.get("system.hostname")
    finally:
        store.close()


def _gunicorn_has_control_socket() -> bool:
    import gunicorn  # only the launcher needs its version, not every gatebox process
    return tuple(gunicorn.version_info[:1]) >= (27,)


def stop(process: subprocess.Popen):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
