"""The Mail Server's auth service, run on its own event loop in a thread,
and Dovecot's side of a login: the generated checkpassword client program,
run as Dovecot runs it (a cleared environment, the request on fd 3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import uuid

from softpaks.mailserver import checkpassword
from softpaks.mailserver.auth_service import AuthService

# Stands in for checkpassword-reply: prints what it would pass to Dovecot.
PRINT_FIELDS = ["/bin/sh", "-c", 'echo "USER=$USER nologin=$nologin mail=$userdb_mail '
                                 'reason=$reason extra=$EXTRA"']


@contextlib.contextmanager
def running_auth_service(data_dir):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    service = AuthService(data_dir, f"test-{uuid.uuid4().hex[:8]}")
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(10)
    try:
        yield service
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        with contextlib.suppress(OSError):
            service.directory.rmdir()


# Puts the request (stdin) on fd 3, where Dovecot puts it, then runs the client.
# Not a preexec_fn: the storm test logs in from twenty threads at once, and a
# child forked from a threaded process can deadlock before exec, leaving
# Popen waiting on it for good (it once stopped the suite for 300 s).
ON_FD_3 = 'exec 3<&0 </dev/null; exec "$@"'


def login(client, user: str, password: str, env=None, reply=PRINT_FIELDS, request=None):
    """Runs the client program as Dovecot does; the CompletedProcess."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, request if request is not None else f"{user}\0{password}\0".encode())
    os.close(write_fd)
    try:
        return subprocess.run(["/bin/sh", "-c", ON_FD_3, "sh", str(client), *reply],
                              stdin=read_fd, capture_output=True, text=True,
                              env={"SERVICE": "imap", **(env or {})}, timeout=60)
    finally:
        os.close(read_fd)


@contextlib.contextmanager
def checkpassword_client(data_dir, directory):
    """(the client program, the service) for logins against DATA_DIR."""
    with running_auth_service(data_dir) as service:
        yield checkpassword.write_client(directory, service.socket_path), service
