"""Debian's real clamd for the tests, with a temporary configuration on a
unix socket and a tiny signature database made offline: a .hdb (MD5 hash
signatures from `sigtool --md5`) of the EICAR test file and of one
clamav-testfiles sample. No download, and clamd stays at a few tens of MB.

The EICAR string is put together at run time from two halves, so no file
in the repository is itself flagged by a scanner."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from softpaks.antivirus.clamd_client import Clamd
from softpaks.antivirus.clamd_service import CLAMD, config_text

from .net import wait_until
from .tools import require

TESTFILES = Path("/usr/share/clamav-testfiles")
CLAM_EXE = TESTFILES / "clam.exe"
# The names our own .hdb gives its two signatures: only these may be asserted.
EICAR_NAME = "Gatebox.Test.EICAR"
CLAM_EXE_NAME = "Gatebox.Test.ClamExe"
TINY_DATABASE = "gatebox-test.hdb"
# The tiny database loads in a few seconds; a busy machine needs the margin.
START_SECONDS = 90.0

_EICAR_HEAD = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$"
_EICAR_TAIL = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def eicar_bytes() -> bytes:
    """The 68-byte EICAR test file."""
    return (_EICAR_HEAD + _EICAR_TAIL).encode("ascii")


def hdb_line(path: Path, name: str) -> str:
    """`sigtool --md5` of `path` ("md5:size:filename"), renamed to `name`."""
    output = subprocess.run(["sigtool", "--md5", str(path)], check=True, capture_output=True,
                            text=True, timeout=60).stdout.strip()
    md5, size, _ = output.split(":", 2)
    return f"{md5}:{size}:{name}"


def tiny_database(directory: Path, name: str = TINY_DATABASE) -> Path:
    """Writes a .hdb with the EICAR file and clam.exe into `directory` (made
    if missing) and returns its path."""
    require("sigtool", "clamav-testfiles")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    work = directory.parent / f".{name}.samples"
    work.mkdir(exist_ok=True)
    eicar = work / "eicar.com"
    eicar.write_bytes(eicar_bytes())
    database = directory / name
    database.write_text(hdb_line(eicar, EICAR_NAME) + "\n" + hdb_line(CLAM_EXE, CLAM_EXE_NAME) + "\n")
    eicar.unlink()
    work.rmdir()
    return database


def extra_signature(directory: Path, data: bytes, name: str, file_name: str) -> Path:
    """A further .hdb in `directory` matching exactly `data`, named `name`."""
    require("sigtool")
    sample = Path(directory).parent / f".{file_name}.sample"
    sample.write_bytes(data)
    database = Path(directory) / file_name
    database.write_text(hdb_line(sample, name) + "\n")
    sample.unlink()
    return database


class ClamdProcess:
    """Debian's /usr/sbin/clamd with its configuration, log and temporary
    files under `directory`. Its signatures: `database_dir` (default
    directory/db), to which the tiny database is always added. Its socket:
    `socket_path` (e.g. where a box under test looks for it), else one in a
    short temporary directory of its own. Stopped by its PID.
    `stream_max_length` in clamd's notation ("64K", "101M")."""

    def __init__(self, directory: Path, *, stream_max_length: str = "101M",
                 database_dir: Path | None = None, socket_path: Path | None = None):
        self.directory = Path(directory).resolve()
        self.stream_max_length = stream_max_length
        self.database_dir = Path(database_dir) if database_dir else self.directory / "db"
        # pytest's temporary directories can be too deep for a unix socket.
        self._socket_dir = None if socket_path else Path(tempfile.mkdtemp(prefix="gb-clamd-"))
        self.socket_path = Path(socket_path) if socket_path else self._socket_dir / "clamd.sock"
        self.config_path = self.directory / "clamd.conf"
        self.log_path = self.directory / "clamd.log"
        self.process: subprocess.Popen | None = None
        self._output = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def client(self, timeout: float = 30.0) -> Clamd:
        return Clamd(self.socket_path, timeout=timeout)

    def start(self) -> "ClamdProcess":
        require("clamd", "sigtool", "clamav-testfiles")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        (self.directory / "tmp").mkdir(exist_ok=True)
        if len(str(self.socket_path).encode()) >= 100:
            raise ValueError(f"too long for a unix socket: {self.socket_path}")
        if not (self.database_dir / TINY_DATABASE).exists():
            tiny_database(self.database_dir)
        self.config_path.write_text(config_text(
            socket=self.socket_path, database_dir=self.database_dir, log_file=self.log_path,
            temp_dir=self.directory / "tmp", stream_max_length=self.stream_max_length))
        self._output = open(self.directory / "clamd.out", "ab")
        self.process = subprocess.Popen([CLAMD, "--foreground", f"--config-file={self.config_path}"],
                                        stdin=subprocess.DEVNULL, stdout=self._output,
                                        stderr=subprocess.STDOUT)
        try:
            wait_until(self._answers, timeout=START_SECONDS, interval=0.1,
                       what="clamd to answer PING")
        except TimeoutError:
            reason = self.log_text()
            self.stop()
            raise TimeoutError(f"clamd did not answer PING: {reason}") from None
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"clamd exited with {self.process.returncode}: {self.log_text()}")
        return self.client(timeout=5).ping_sync()

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._output is not None:
            self._output.close()
            self._output = None

    def remove(self):
        """Stops clamd and removes the socket directory it made for itself."""
        self.stop()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def log_text(self) -> str:
        texts = [p.read_text(errors="replace") for p in (self.log_path, self.directory / "clamd.out")
                 if p.exists()]
        return " | ".join("\n".join(texts).strip().splitlines()[-8:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.remove()


@pytest.fixture
def clamd(tmp_path):
    """A running clamd with the tiny database (import this fixture into the test module)."""
    process = ClamdProcess(tmp_path / "clamd").start()
    yield process
    process.remove()
