"""A real S3 API for the distributed Map tests: moto's server (`python -m moto.server`) on a free port."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openfnf.redisserver import free_port, wait_for_port


@dataclass
class MotoS3:
    """A running moto server and how to reach it."""

    endpoint: str
    proc: subprocess.Popen[bytes]

    def client(self) -> Any:
        """A boto3 S3 client on it (path-style addressing: the host is an IP address)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        """The OpenFnF settings that point at it."""
        return {
            "OPENFNF_OSS_ENDPOINT": self.endpoint, "OPENFNF_OSS_REGION": "us-east-1", "OPENFNF_OSS_ACCESS_KEY_ID": "test",
            "OPENFNF_OSS_ACCESS_KEY_SECRET": "test", "OPENFNF_OSS_ADDRESSING_STYLE": "path",
        }  # fmt: skip


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[MotoS3]:
    """moto's server for the length of a `with` block (it fails, never skips, if moto is missing)."""
    port = free_port()
    log = open(workdir / "moto.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_for_port(port, proc)
        yield MotoS3(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
