"""A throw-away private Postfix instance for benchmarks.

Everything lives under one directory: config_directory (main.cf, master.cf),
queue_directory, data_directory and the mail log (there is no syslog in the
build containers, so Postfix logs through postlogd to maillog_file).

The instance relays mail for one domain to a fixed next hop and delivers
nothing locally. Queue-file durability is left at Postfix's default: cleanup
fsyncs every queue file before smtpd answers 250.

Usage:
    with PostfixInstance(root, smtp_port=2600, relay_domain="example.com",
                         nexthop=("127.0.0.1", 2700)) as pf:
        ...  # SMTP on 127.0.0.1:2600

Needs root (the postfix command, queue ownership by the postfix user).
Started with `postfix -c DIR start`, stopped with `postfix -c DIR stop`;
never touches the system instance in /etc/postfix.
"""

from __future__ import annotations

import os
import pwd
import grp
import shutil
import subprocess
import time
from pathlib import Path

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postconf"

# chroot column is "n" everywhere: the instance lives in a temp dir that has no
# chroot jail set up.
MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    pass


class PostfixInstance:
    def __init__(self, root: str | os.PathLike, *, smtp_port: int, relay_domain: str,
                 nexthop: tuple[str, int], bind: str = "127.0.0.1",
                 mynetworks: str = "127.0.0.0/8", extra: dict | None = None):
        self.root = Path(root).resolve()
        self.config_dir = self.root / "config"
        self.queue_dir = self.root / "queue"
        self.data_dir = self.root / "data"
        self.maillog = self.root / "maillog"
        self.smtp_port = smtp_port
        self.bind = bind
        self.relay_domain = relay_domain
        self.nexthop = nexthop
        self.mynetworks = mynetworks
        self.extra = dict(extra or {})
        self.started = False

    # ---- configuration ---------------------------------------------------------
    def main_cf(self) -> dict:
        host, port = self.nexthop
        settings = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix-bench.example.net",
            "mydomain": "example.net",
            "myorigin": "$myhostname",
            "inet_interfaces": self.bind,
            "inet_protocols": "ipv4",
            "mynetworks": self.mynetworks,
            # Relay only; no local delivery.
            "mydestination": "",
            "local_recipient_maps": "",
            "local_transport": "error:5.1.1 local delivery disabled",
            "relay_domains": self.relay_domain,
            "relay_recipient_maps": "",
            "transport_maps": f"inline:{{{self.relay_domain}=relay:[{host}]:{port}}}",
            "relayhost": "",
            "alias_maps": "",
            "alias_database": "",
            # Like gatebox: no per-client connection limits, no reverse DNS of clients.
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_peername_lookup": "no",
            "smtpd_banner": "$myhostname ESMTP postfix-bench",
            "biff": "no",
            "smtputf8_enable": "no",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            # No fiddling with queue-file durability: Postfix's defaults fsync.
        }
        settings.update(self.extra)
        return settings

    def write_config(self):
        self.root.mkdir(parents=True, exist_ok=True)
        # The postfix user must be able to traverse down to its queue.
        _chmod_path_traversable(self.root)
        self.config_dir.mkdir(exist_ok=True)
        os.chmod(self.config_dir, 0o755)
        self.queue_dir.mkdir(exist_ok=True)
        os.chmod(self.queue_dir, 0o755)
        self.data_dir.mkdir(exist_ok=True)
        uid = pwd.getpwnam("postfix").pw_uid
        gid = grp.getgrnam("postfix").gr_gid
        os.chown(self.data_dir, uid, gid)
        os.chmod(self.data_dir, 0o700)
        lines = [f"{key} = {value}" for key, value in self.main_cf().items()]
        (self.config_dir / "main.cf").write_text("\n".join(lines) + "\n")
        listen = f"{self.bind}:{self.smtp_port}"
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(listen=listen))
        # Catch configuration mistakes before starting.
        self._run(POSTFIX, "-c", str(self.config_dir), "check")

    # ---- life cycle --------------------------------------------------------------
    def start(self, timeout: float = 30.0):
        self.write_config()
        self._run(POSTFIX, "-c", str(self.config_dir), "start")
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.master_pid() is not None:
                return
            time.sleep(0.05)
        raise PostfixError(f"postfix master did not start within {timeout}s; see {self.maillog}")

    def stop(self, timeout: float = 30.0):
        if not self.started:
            return
        pid = self.master_pid()
        try:
            self._run(POSTFIX, "-c", str(self.config_dir), "stop")
        finally:
            self.started = False
        # `postfix stop` returns once master got the signal; wait for it to go.
        if pid is not None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)

    def master_pid(self) -> int | None:
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def queue_counts(self) -> dict:
        """Files in the queue directories that hold messages (0s once drained)."""
        counts = {}
        for name in ("maildrop", "incoming", "active", "deferred", "hold", "corrupt"):
            base = self.queue_dir / name
            counts[name] = sum(len(files) for _, _, files in os.walk(base)) if base.exists() else 0
        return counts

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no maillog)"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @staticmethod
    def _run(*argv):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise PostfixError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): check its state.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _chmod_path_traversable(path: Path):
    """mkdtemp makes 0700 directories; postfix daemons need to get through.
    Opens up the instance root itself, never its parents (only checks them)."""
    os.chmod(path, (path.stat().st_mode & 0o777) | 0o755)
    for part in path.parents:
        if not part.stat().st_mode & 0o001:
            raise PostfixError(f"{part} is not searchable by the postfix user; "
                               "put the instance somewhere else")
