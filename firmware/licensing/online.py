"""Online activation: exchange a short activation code and this box's serial
for a license key at the vendor's license service. The key that comes back
is verified like a pasted one, so TLS protects the code in transit while the
key's authenticity rests on the vendor signature alone."""

from __future__ import annotations

import os

from .errors import OnlineActivationError

DEFAULT_SERVER = "https://licenses.gatebox.example"
SERVER_ENV = "GATEBOX_LICENSE_SERVER"
CA_ENV = "GATEBOX_LICENSE_CA"
TIMEOUT = 20
PATH = "/api/v1/activate"

_FALLBACK = ("paste the license key instead: ask the vendor for the key for this box's "
             "serial ('gatebox license serial'), then run 'gatebox license activate KEY'")


def server_url(server: str | None = None) -> str:
    return (server or os.environ.get(SERVER_ENV) or DEFAULT_SERVER).rstrip("/")


def request_key(code: str, serial: str, server: str | None = None, ca: str | None = None) -> str:
    import requests  # a third of a second to import; only online activation needs it
    url = server_url(server) + PATH
    verify_tls = ca or os.environ.get(CA_ENV) or True
    try:
        response = requests.post(url, json={"code": code, "serial": serial},
                                 timeout=TIMEOUT, verify=verify_tls)
    except requests.exceptions.SSLError as error:
        raise OnlineActivationError(f"the license service at {url} failed the TLS check "
                                    f"({_short(error)}); {_FALLBACK}") from None
    except requests.exceptions.RequestException as error:
        raise OnlineActivationError(f"could not reach the license service at {url} "
                                    f"({_short(error)}); {_FALLBACK}") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and isinstance(body.get("key"), str):
        return body["key"]
    reason = body.get("error") if isinstance(body, dict) else None
    raise OnlineActivationError(
        f"the license service refused the code: {reason or f'HTTP {response.status_code}'}")


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 200 else text[:200] + "..."
