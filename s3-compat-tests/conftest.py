"""Starts a real `jadfs server` for the client scenarios: an ephemeral port,
a temporary data folder, fixed test credentials."""

import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import pytest

ACCESS_KEY = "JADFSCOMPATACCESS001"
SECRET_KEY = "compat-secret-key-0123456789abcdefghijk"
REPO = pathlib.Path(__file__).resolve().parent.parent


def jadfs_binary():
    if os.environ.get("JADFS_BIN"):
        return os.environ["JADFS_BIN"]
    # The most recently built of the release and debug binaries.
    built = [p for p in (REPO / "target" / profile / "jadfs" for profile in ("release", "debug")) if p.exists()]
    if not built:
        raise RuntimeError("build jadfs first (cargo build), or set JADFS_BIN")
    return str(max(built, key=lambda p: p.stat().st_mtime))


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1, made with the openssl CLI."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


class Server:
    def __init__(self, tls=False):
        self.tmp = tempfile.mkdtemp(prefix="jadfs-compat-")
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        self.ca = None
        tls_args = []
        if tls:
            self.ca, key = make_certificate(self.tmp)
            tls_args = ["--tls-cert", self.ca, "--tls-key", key]
        self.process = subprocess.Popen(
            [jadfs_binary(), "server", "--listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.tmp, "data"),
             "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, *tls_args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={**os.environ, "RUST_LOG": "warn"})
        found = threading.Event()
        self.endpoint = None

        def read():
            for line in self.process.stdout:
                if line.strip().startswith("S3 endpoint: "):
                    self.endpoint = line.strip().split("S3 endpoint: ", 1)[1]
                    found.set()
        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            raise RuntimeError("jadfs server did not start")

    def env(self):
        """Environment for CLI clients: credentials, region, no user config."""
        home = os.path.join(self.tmp, "home")
        os.makedirs(home, exist_ok=True)
        # A CA bundle set for the machine means nothing to a plain-HTTP
        # endpoint, and rclone refuses to start with one.
        inherited = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        if self.ca:
            inherited["AWS_CA_BUNDLE"] = self.ca
        return {**inherited, "HOME": home,
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.path.join(home, "none"),
                "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none")}

    @property
    def verify(self):
        """What Python clients pass as `verify`: the CA for HTTPS, else True."""
        return self.ca or True

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="session", params=["http", "https"])
def server(request):
    """Every client scenario runs against plain HTTP and against TLS."""
    s = Server(tls=request.param == "https")
    yield s
    s.stop()


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
