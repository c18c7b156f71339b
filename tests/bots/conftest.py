"""A live server for the bots (the e2e fixtures' daphne process on the test database),
finding the ``botdemo`` test package; and that package on this process's path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import e2e_static_root, live_server_factory  # noqa: F401 - fixtures used here

PACKAGES = Path(__file__).resolve().parent / "packages"


@pytest.fixture(scope="module")
def bots_server(live_server_factory):  # noqa: F811
    return live_server_factory(env={"EXPERIMENTS_PATH": str(PACKAGES)})


@pytest.fixture
def botdemo(settings):
    settings.EXPERIMENTS_PATH = [*settings.EXPERIMENTS_PATH, PACKAGES]
    return PACKAGES / "botdemo"
