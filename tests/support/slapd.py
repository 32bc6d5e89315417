"""Debian's real OpenLDAP server (slapd) on loopback, with a temporary
configuration: an mdb database for dc=example,dc=com holding an Active
Directory style user (proxyAddresses of types SMTP, smtp, X400 and SIP, no
mail), a plain inetOrgPerson with a mail address, and a service account to
bind as. Plain LDAP with StartTLS, and LDAPS on a second port, both with a
self-signed certificate made at start.

`anonymous=False` lets only bound users read, as Active Directory does:
an anonymous bind is refused outright."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ldap3

from .net import free_port, wait_until
from .tools import require

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SCHEMAS = Path("/etc/ldap/schema")
MODULES = Path("/usr/lib/ldap")

SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-secret"
SERVICE_DN = f"cn=gatebox,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"
JANE_DN = f"cn=Jane Doe,ou=people,{SUFFIX}"
BOB_DN = f"cn=Bob Smith,ou=people,{SUFFIX}"

# Active Directory's proxyAddresses is not in any schema OpenLDAP ships in the
# form AD uses, so the test declares it (under an unassigned private OID).
PROXY_SCHEMA = """\
attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'proxyAddresses'
    DESC 'Active Directory: every address of a mailbox, with its type'
    EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch
    SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'adMailUser' SUP top AUXILIARY
    MAY proxyAddresses )
"""

ENTRIES = f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=services,{SUFFIX}
objectClass: organizationalUnit
ou: services

dn: {JANE_DN}
objectClass: inetOrgPerson
objectClass: adMailUser
cn: Jane Doe
sn: Doe
proxyAddresses: SMTP:jane@example.com
proxyAddresses: smtp:j.doe@example.com
proxyAddresses: X400:c=US;a= ;p=Org;o=Ex;s=Doe;
proxyAddresses: SIP:jane.phone@example.com

dn: {BOB_DN}
objectClass: inetOrgPerson
cn: Bob Smith
sn: Smith
mail: bob@example.com

dn: {SERVICE_DN}
objectClass: person
cn: gatebox
sn: gatebox
userPassword: {SERVICE_PASSWORD}
"""

READ_BY_ANYONE = "access to * by * read"
# Passwords are never readable; everything else only by a bound user.
READ_BY_USERS = ("access to attrs=userPassword by anonymous auth by * none\n"
                 "access to * by anonymous auth by users read")


class LdapServer:
    def __init__(self, directory: Path, anonymous: bool = True, host: str = "127.0.0.1"):
        self.directory = Path(directory)
        self.anonymous = anonymous
        self.host = host
        self.port = free_port(host)
        self.ldaps_port = free_port(host)
        self.process: subprocess.Popen | None = None

    # ---- what a test puts into the box's settings ----------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def settings(self, security: str = "none", auth: bool | None = None,
                 password: str = SERVICE_PASSWORD) -> dict:
        auth = (not self.anonymous) if auth is None else auth
        server = f"ldaps://{self.host}:{self.ldaps_port}" if security == "ldaps" else self.address
        return {"email.ldap_server": server, "email.ldap_security": security,
                "email.ldap_domain": SUFFIX, "email.ldap_auth": auth,
                "email.ldap_login": SERVICE_DN if auth else "",
                "email.ldap_password": password if auth else ""}

    # ---- life -----------------------------------------------------------
    def start(self) -> "LdapServer":
        require("slapd", "openssl")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "db").mkdir(exist_ok=True)
        self._make_certificate()
        (self.directory / "proxyaddresses.schema").write_text(PROXY_SCHEMA)
        (self.directory / "slapd.conf").write_text(self._config())
        (self.directory / "entries.ldif").write_text(ENTRIES)
        subprocess.run([SLAPADD, "-f", str(self.directory / "slapd.conf"),
                        "-l", str(self.directory / "entries.ldif")],
                       check=True, capture_output=True, timeout=60)
        self.log = open(self.directory / "slapd.log", "wb")
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(self.directory / "slapd.conf"), "-d", "0",
             "-h", f"ldap://{self.host}:{self.port}/ ldaps://{self.host}:{self.ldaps_port}/"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._answers, timeout=20, what="slapd to answer a search")
        except TimeoutError:
            self.stop()
            raise TimeoutError(f"slapd did not answer: {self.log_text()}") from None
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if getattr(self, "log", None) is not None:
            self.log.close()
            self.log = None

    def log_text(self) -> str:
        path = self.directory / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- changes while running (as the directory's administrator) -------
    def admin(self) -> ldap3.Connection:
        server = ldap3.Server(self.host, port=self.port, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(server, ROOT_DN, ROOT_PASSWORD, auto_bind=True,
                                receive_timeout=5, raise_exceptions=True)

    def delete(self, dn: str):
        with self.admin() as conn:
            conn.delete(dn)

    def add_person(self, cn: str, mail: str) -> str:
        dn = f"cn={cn},ou=people,{SUFFIX}"
        with self.admin() as conn:
            conn.add(dn, ["inetOrgPerson"], {"cn": cn, "sn": cn, "mail": mail})
        return dn

    # ---- inside -----------------------------------------------------------
    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"slapd exited with {self.process.returncode}: {self.log_text()}")
        try:
            with self.admin() as conn:
                return conn.search(SUFFIX, "(objectClass=*)", ldap3.BASE)
        except ldap3.core.exceptions.LDAPException:
            return False

    def _make_certificate(self):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={self.host}", "-addext", f"subjectAltName=IP:{self.host}",
             "-keyout", str(self.directory / "key.pem"), "-out", str(self.directory / "cert.pem")],
            check=True, capture_output=True, timeout=60)

    def _config(self) -> str:
        d = self.directory
        access = READ_BY_ANYONE if self.anonymous else READ_BY_USERS
        refuse_anonymous = "" if self.anonymous else "disallow bind_anon\n"
        return f"""\
include {SCHEMAS / 'core.schema'}
include {SCHEMAS / 'cosine.schema'}
include {SCHEMAS / 'inetorgperson.schema'}
include {d / 'proxyaddresses.schema'}
modulepath {MODULES}
moduleload back_mdb
pidfile {d / 'slapd.pid'}
argsfile {d / 'slapd.args'}
{refuse_anonymous}TLSCertificateFile {d / 'cert.pem'}
TLSCertificateKeyFile {d / 'key.pem'}
sizelimit 1000

database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {d / 'db'}
{access}
"""
