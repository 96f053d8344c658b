"""docker-compose.yml and Dockerfile cannot run here (no Docker engine): check what can be read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from heron.state.server import HERON_HOME_ENV, REDIS_URL_ENV

ROOT = Path(__file__).resolve().parent.parent
HERON_SERVICES = ("ray-head", "ray-worker", "heron")  # every container that runs Heron code


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def ray_head_port(compose: dict) -> int:
    flag = next(arg for arg in compose["services"]["ray-head"]["command"] if arg.startswith("--port="))
    return int(flag.split("=", 1)[1])


def test_services(compose):
    assert set(compose["services"]) == {"redis", *HERON_SERVICES}


def test_redis_is_persistent_and_health_checked(compose):
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD")  # never open
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD")  # the health check authenticates
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]


def test_ray_gcs_port_does_not_collide_with_redis(compose):
    head = compose["services"]["ray-head"]
    assert "--head" in head["command"] and "--block" in head["command"]
    assert ray_head_port(compose) != 6379
    assert "8265:8265" in head["ports"]  # dashboard


def test_worker_reserves_a_gpu_and_joins_the_head(compose):
    worker = compose["services"]["ray-worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    assert f"--address=ray-head:{ray_head_port(compose)}" in worker["command"]


def test_env_names_match_what_heron_and_ray_read(compose):
    for name in HERON_SERVICES:
        env = compose["services"][name]["environment"]
        assert env[REDIS_URL_ENV].startswith("redis://:${REDIS_PASSWORD") and env[REDIS_URL_ENV].endswith(
            "@redis:6379/0"
        ), name
        assert HERON_HOME_ENV in env, name
        assert env["RAY_AUTH_MODE"] == "token", name  # must be the same on every node
    for name in ("ray-worker", "heron"):
        assert compose["services"][name]["environment"]["RAY_ADDRESS"] == f"ray-head:{ray_head_port(compose)}"


def test_heron_waits_for_healthy_redis(compose):
    for name in HERON_SERVICES:
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy", name


def test_dockerfile_installs_the_project_and_runs_heron():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text.splitlines()
    assert "pip install --no-deps ." in text
    assert 'ENTRYPOINT ["heron"]' in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "heron" in scripts


def test_the_heron_service_serves_the_api_with_a_key_and_a_readiness_check(compose):
    heron = compose["services"]["heron"]
    assert "exec heron serve --host 0.0.0.0 --port 8000" in heron["command"][0]
    assert "8000:8000" in heron["ports"]
    assert heron["environment"]["HERON_API_KEY"].startswith("${HERON_API_KEY:?")  # required: it listens beyond loopback
    assert "/ready" in " ".join(heron["healthcheck"]["test"])
