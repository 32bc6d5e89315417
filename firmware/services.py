"""`gatebox run`: the box's mail services.

Two processes, as Postfix splits smtpd from qmgr, so that taking mail in and
delivering it use both cores: this process runs smtpd (SMTP and submission
ports) and the settings watcher, and starts the queue manager as a child
(`gatebox qmgr`). The child dies with its parent (a crash of the stack
takes both down; nothing accepted is lost because the queue files are the
truth) and is restarted if it fails alone. smtpd tells it about new mail
over a pipe; the queue manager also rescans the queue, so a lost note only
delays delivery by a few seconds. Stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

from firmware.config import Store
from firmware.config.watch import Watcher
from firmware.system import tls

from . import plugins
from .mail import extensions
from .mail.deliver import SmtpDelivery
from .mail.qmgr import QueueManager
from .mail.queue import Spool
from .mail.smtpd import Gateway
from .mail.stats import MailStats

log = logging.getLogger("gatebox")

_PR_SET_PDEATHSIG = 1
QMGR_RESTART_SECONDS = 1.0


def configure_logging():
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%b %d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    # aiosmtpd logs every command at INFO; the box logs its own summary lines.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def _use_many_threads(loop, workers: int):
    # fsyncs and SMTP deliveries run in threads; the default pool is too small.
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=workers))


def _on_stop_signals(loop, stop: asyncio.Event):
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass


async def _stop_tasks(tasks):
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# ---- the queue manager process ------------------------------------------------------
async def serve_qmgr(data_dir: Path, notify_fd: int | None = None,
                     stop: asyncio.Event | None = None):
    loop = asyncio.get_running_loop()
    _use_many_threads(loop, 48)
    store = Store(data_dir)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    report = await loop.run_in_executor(None, spool.requeue_active)
    if any(report.values()):
        log.info("queue recovery: %s", report)
    delivery = SmtpDelivery(helo_name=watcher.current["system.hostname"])
    stats = MailStats(store)
    routes = extensions.routes(store)
    core_agents = {"lan": delivery, "smarthost": delivery, "mx": delivery}
    announced: list = []  # filled below, once the queue manager exists
    context = plugins.DeliveryContext(
        data_dir, spool, lambda qid: loop.call_soon_threadsafe(announced[0], qid))
    qmgr = QueueManager(spool, watcher, {**core_agents, **extensions.delivery_agents(store, context)},
                        stats=stats, extra_routes=lambda: routes)
    announced.append(qmgr.notify)

    def licensing_changed(_settings):
        nonlocal routes
        routes = extensions.routes(store)
        # A lapsed SoftPak's agents go with its routes: its mail waits in the queue.
        qmgr.agents = {**core_agents, **extensions.delivery_agents(store, context)}
    watcher.on_change(licensing_changed)
    if notify_fd is not None:
        _listen_for_new_mail(loop, notify_fd, qmgr)
    stop = stop or asyncio.Event()
    _on_stop_signals(loop, stop)
    tasks = [loop.create_task(qmgr.run()), loop.create_task(watcher.watch()),
             loop.create_task(_close_idle_connections(delivery)), loop.create_task(stats.run())]
    await stop.wait()
    await _stop_tasks(tasks)
    await loop.run_in_executor(None, delivery.close_idle)
    store.close()


def _listen_for_new_mail(loop, fd: int, qmgr: QueueManager):
    os.set_blocking(fd, False)
    pending = bytearray()

    def readable():
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # smtpd is gone; we are about to be stopped too
            loop.remove_reader(fd)
            return
        pending.extend(data)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            if line:
                qmgr.notify(line.decode("ascii", "replace"))

    loop.add_reader(fd, readable)


async def _close_idle_connections(delivery: SmtpDelivery):
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(10)
        await loop.run_in_executor(None, delivery.close_idle, 20.0)


# ---- the smtpd process, which also looks after the queue manager ----------------------
class QmgrChild:
    """The queue manager child process and the pipe that tells it about new mail."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self._write_fd: int | None = None

    async def start(self):
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "firmware.cli", "--data", str(self.data_dir), "qmgr",
            "--notify-fd", str(read_fd), pass_fds=(read_fd,), preexec_fn=_die_with_parent)
        os.close(read_fd)
        if self._write_fd is not None:
            os.close(self._write_fd)
        self._write_fd = write_fd

    def notify(self, qid: str):
        if self._write_fd is None:
            return
        try:
            os.write(self._write_fd, qid.encode() + b"\n")
        except (BlockingIOError, BrokenPipeError):
            pass  # the queue manager's rescan will find it

    async def supervise(self):
        while True:
            code = await self.process.wait()
            log.error("queue manager exited with status %s; restarting", code)
            await asyncio.sleep(QMGR_RESTART_SECONDS)
            await self.start()

    async def stop(self):
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None


class SoftPakServices:
    """The SoftPaks' long-running services (e.g. Dovecot for the Mail Server
    SoftPak). Each service's name says what it runs and how, so after a
    license or settings change the set wanted now is compared by name:
    services no longer wanted are stopped first (freeing their ports for a
    stand-in), then new ones are started."""

    def __init__(self, store, options: dict):
        self.store = store
        self.options = options
        self.running: dict = {}
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task | None = None

    async def reconcile(self):
        async with self._lock:
            try:
                wanted = extensions.services(self.store, self.options)
            except Exception:
                log.exception("could not work out which SoftPak services to run")
                return
            for name in [n for n in self.running if n not in wanted]:
                await self._stop(name)
            for name, service in wanted.items():
                if name not in self.running:
                    try:
                        await service.start()
                    except Exception as error:
                        # One SoftPak service failing must not take the mail stack down.
                        log.error("service %s did not start: %s", name, error)
                        continue
                    self.running[name] = service
                    log.info("service %s started", name)

    def reconcile_soon(self):
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self.reconcile())
        else:
            # A change arrived while one is being applied: apply again after it.
            previous = self._pending

            async def after():
                await asyncio.gather(previous, return_exceptions=True)
                await self.reconcile()
            self._pending = asyncio.get_running_loop().create_task(after())

    async def _stop(self, name: str):
        service = self.running.pop(name)
        try:
            await service.stop()
            log.info("service %s stopped", name)
        except Exception:
            log.exception("service %s did not stop cleanly", name)

    async def stop_all(self):
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        async with self._lock:
            for name in list(self.running):
                await self._stop(name)


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


async def serve(data_dir: Path, *, bind: str, smtp_port: int, submission_port: int,
                ready=None, stop: asyncio.Event | None = None, service_options: dict | None = None):
    loop = asyncio.get_running_loop()
    _use_many_threads(loop, 32)
    store = Store(data_dir)
    plugins.apply_softpak_migrations(store)
    watcher = Watcher(store)
    spool = Spool(data_dir / "queue")
    spool.create()
    report = spool.drop_unfinished()
    if any(report.values()):
        log.info("queue recovery: %s", report)
    tls.ensure_certificate(data_dir, watcher.current["system.hostname"])
    qmgr = QmgrChild(data_dir)
    await qmgr.start()
    stats = MailStats(store)
    gateway = Gateway(watcher=watcher, spool=spool, policy=extensions.policy(store),
                      tls_context=tls.server_context(data_dir), on_enqueued=qmgr.notify,
                      stats=stats)
    watcher.on_change(lambda _settings: setattr(gateway, "policy", extensions.policy(store)))
    softpak_services = SoftPakServices(store, {"bind": bind, "data_dir": data_dir,
                                               **(service_options or {})})
    await softpak_services.reconcile()
    watcher.on_change(lambda _settings: softpak_services.reconcile_soon())
    servers = [await gateway.serve(bind, smtp_port, "smtp")]
    if submission_port:
        servers.append(await gateway.serve(bind, submission_port, "submission"))
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    log.info("gatebox listening on %s: smtp %s%s", bind, ports[0],
             f", submission {ports[1]}" if len(ports) > 1 else "")
    stop = stop or asyncio.Event()
    _on_stop_signals(loop, stop)
    tasks = [loop.create_task(watcher.watch()), loop.create_task(stats.run()),
             loop.create_task(qmgr.supervise())]
    if ready is not None:
        ready(ports)
    await stop.wait()
    log.info("stopping")
    for server in servers:
        server.close()
    await _stop_tasks(tasks)
    await softpak_services.stop_all()
    await qmgr.stop()
    store.close()
    log.info("stopped")


def run(data_dir, *, bind: str, smtp_port: int, submission_port: int, http_port: int = 0,
        dev_http: bool = False, pop3_port: int | None = None, imap_port: int | None = None,
        imaps_port: int | None = None):
    configure_logging()
    web = _start_web_admin(Path(data_dir), bind, http_port, dev_http) if http_port else None
    try:
        asyncio.run(serve(Path(data_dir), bind=bind, smtp_port=smtp_port,
                          submission_port=submission_port,
                          service_options={"pop3_port": pop3_port, "imap_port": imap_port,
                                           "imaps_port": imaps_port}))
    finally:
        if web is not None:
            _stop_web_admin(web)


def _start_web_admin(data_dir: Path, bind: str, port: int, dev_http: bool):
    """The web admin under gunicorn in its own process: one worker with
    threads, so the sign-in throttle's counts are seen by every request; HTTPS
    with the box's certificate unless plain HTTP was asked for development."""
    import subprocess
    from webui import DATA_ENV, DEV_HTTP_ENV
    store = Store(data_dir)
    try:
        cert, key = tls.ensure_certificate(data_dir, store.get("system.hostname"))
    finally:
        store.close()
    host = f"[{bind}]" if ":" in bind else bind
    command = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "1",
               "--threads", "8", "--graceful-timeout", "5", "--access-logfile", "-",
               "--access-logformat", 'web %(h)s "%(r)s" %(s)s %(b)s %(M)sms']
    if _gunicorn_has_control_socket():
        # Nothing on the box uses it, and a fixed path in $HOME would be shared by every instance.
        command.append("--no-control-socket")
    if not dev_http:
        command += ["--certfile", str(cert), "--keyfile", str(key)]
    command.append("webui.wsgi:app")
    env = {**os.environ, DATA_ENV: str(data_dir), DEV_HTTP_ENV: "1" if dev_http else "0"}
    log.info("web admin on %s://%s:%s", "http" if dev_http else "https", bind, port)
    # If gatebox itself is killed outright, the kernel stops the web admin too
    # instead of leaving it serving a box that is down.
    return subprocess.Popen(command, env=env, preexec_fn=_die_with_parent)


def _gunicorn_has_control_socket() -> bool:
    import gunicorn
    return tuple(gunicorn.version_info[:1]) >= (27,)


def _stop_web_admin(process):
    import subprocess
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def run_qmgr(data_dir, notify_fd: int | None):
    configure_logging()
    asyncio.run(serve_qmgr(Path(data_dir), notify_fd))
