"""A throwaway CA and certificates (openssl), and a redis-server with the ACL users and TLS
settings of docker/redis.conf's security section, for tests/test_security.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import redis

from feast_lua.resources import lua_dir, redis_conf
from feast_lua.server import RedisServer

PASSWORDS = {
    "<SERVING_PASSWORD>": "serving-secret-1",
    "<WRITER_PASSWORD>": "writer-secret-2",
    "<ADMIN_PASSWORD>": "admin-secret-3",
    "<OPS_PASSWORD>": "ops-secret-4",
    "<STREAM_PASSWORD>": "stream-secret-5",
}
USERS = {"feast-serving": "serving-secret-1", "feast-writer": "writer-secret-2",
         "feast-admin": "admin-secret-3", "ops": "ops-secret-4", "feast-stream": "stream-secret-5"}


def conf_lines(prefix: str) -> list[str]:
    """The commented-out lines of docker/redis.conf that start with `# <prefix> `."""
    marker = f"# {prefix} "
    return [line[len(marker):] for line in redis_conf().read_text().splitlines() if line.startswith(marker)]


def acl_file_text() -> str:
    """docker/redis.conf's ACL lines with the SHAs of lua/manifest.json and the test passwords."""
    shas = {f"<{name.upper()}_SHA>": spec["sha1"]
            for name, spec in json.loads((lua_dir() / "manifest.json").read_text())["scripts"].items()}
    text = "\n".join(conf_lines("ACL")) + "\n"
    for placeholder, value in {**shas, **PASSWORDS}.items():
        text = text.replace(placeholder, value)
    assert "<" not in text, text
    return text


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed
    by the CA, plus a second CA that signed nothing here (an untrusted one)."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                 "-subj", f"/CN=feast-lua test {ca}", cwd=folder)
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, ext in extensions.items():
        (folder / f"{name}.ext").write_text(ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=feast-lua test {name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
                 cwd=folder)
    return {name: folder / name for name in
            ("ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class SecureRedisServer(RedisServer):
    """docker/redis.conf plus its security section switched on: the ACL users in an aclfile and
    TLS only (no plain TCP port), client certificates required."""

    def __init__(self):
        super().__init__()
        self.certs = make_certs(self.dir / "tls")
        acl = self.dir / "users.acl"
        acl.write_text(acl_file_text())
        tls = {line.split()[0]: line.split()[1] for line in conf_lines("TLS")}
        tls.update({"port": "0", "tls-port": str(self.port),
                    "tls-cert-file": str(self.certs["server.crt"]),
                    "tls-key-file": str(self.certs["server.key"]),
                    "tls-ca-cert-file": str(self.certs["ca.crt"])})
        self.extra_args = ["--aclfile", str(acl)] + [a for k, v in tls.items() for a in (f"--{k}", v)]

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}"

    def tls_options(self, client_cert: bool = True) -> dict[str, str]:
        options = {"ssl_ca_certs": str(self.certs["ca.crt"])}
        if client_cert:
            options.update(ssl_certfile=str(self.certs["client.crt"]),
                           ssl_keyfile=str(self.certs["client.key"]))
        return options

    def raw(self, user: str = "ops", **overrides) -> redis.Redis:
        """A plain redis-py client logged in as `user`, over TLS."""
        options = {"host": "127.0.0.1", "port": self.port, "ssl": True, "username": user,
                   "password": USERS.get(user), "socket_timeout": 5, **self.tls_options()}
        options.update(overrides)
        return redis.Redis(**options)

    def probe_client(self) -> redis.Redis:
        return self.raw(socket_connect_timeout=0.2)
