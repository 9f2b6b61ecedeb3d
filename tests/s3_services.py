"""A real S3 API server for the tests: moto's standalone server (`python -m moto.server`, the S3 emulator that
s3fs's own test suite uses), on a free loopback port, stopped by the PID this module started. It is an
emulator of the S3 HTTP API, not AWS: what it does not check (every signature detail, storage classes) these
tests do not claim."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from chains import free_port, stop_process, wait_ready

# moto accepts any credentials; boto3 wants some to sign with.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class MotoS3:
    """One moto server; `endpoint` is its URL."""

    def __init__(self) -> None:
        port = free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        self.root = Path(tempfile.mkdtemp(prefix="moto-"))
        self.log = open(self.root / "moto.log", "w+b")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        if not wait_ready(self.proc, lambda: requests.get(f"{self.endpoint}/moto-api/", timeout=1).raise_for_status(),
                          60, poll=0.2):
            self.log.seek(0)
            output = self.log.read().decode(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"moto server did not start: {output}")

    def client(self):  # a boto3 S3 client
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
