"""A real headless Chromium (Debian's chromium + chromium-driver, through Selenium) against a real service.

Without a browser these tests are skipped locally and FAIL under CI=true (`.ci/run` installs
`chromium chromium-driver`). Install locally with `apt-get install -y chromium chromium-driver`.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import needs
from tests.conftest import ROOT, Service, running_service

ACCOUNT, OTHER_ACCOUNT = "1234567890", "2222222222"  # the service key's account (Settings.account_id), and another
FULL = ("CONSOLEFULL", "console-full-secret-0123")
READ_ONLY = ("CONSOLERO", "console-ro-secret-01234")
OTHER = ("CONSOLEOTHER", "console-other-secret-01")
READ_ONLY_POLICY = [{"effect": "Allow", "action": ["fnf:Describe*", "fnf:List*", "fnf:Get*"], "resource": "*"}]


def _binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.exists(name) else None)
        if found:
            return found
    return None


def credentials(path: Path) -> Path:
    """The console's keys: full and read-only in the service key's account, one in another account."""
    doc = {
        "accounts": [
            {"id": ACCOUNT, "access_keys": [
                {"id": FULL[0], "secret": FULL[1]},
                {"id": READ_ONLY[0], "secret": READ_ONLY[1], "policy": READ_ONLY_POLICY},
            ]},
            {"id": OTHER_ACCOUNT, "access_keys": [{"id": OTHER[0], "secret": OTHER[1]}]},
        ]
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def console_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The service with its console at /console/, test functions and the console's keys."""
    tmp = tmp_path_factory.mktemp("console")
    env = {
        "OPENFNF_CREDENTIALS": str(credentials(tmp / "credentials.yaml")),
        "OPENFNF_FUNCTIONS": str(ROOT / "tests" / "fixtures" / "functions" / "functions.yaml"),
        "OPENFNF_CONSOLE": "true",
        "OPENFNF_HEARTBEAT_INTERVAL_SECONDS": "1",
        "OPENFNF_CONSOLE_SIGNIN_ATTEMPTS": "1000",  # every test signs in from 127.0.0.1 (the limit has its own test)
    }
    with running_service(tmp, workers=1, timers=1, **env) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by Selenium, with a fresh profile."""
    chromium = _binary("chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
    driver_path = _binary("chromedriver", "/usr/bin/chromedriver")
    if chromium is None or driver_path is None:
        needs.missing("no Chromium/chromedriver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    profile = tempfile.mkdtemp(prefix="openfnf-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
