"""The HAProxy settings pipefleet gives Serve land in the config that Serve renders from them."""

from __future__ import annotations

import re

from serve.app import HAPROXY_ENV, fast_path_env


def _rendered_defaults() -> str:
    """The ``defaults`` section of Serve's HAProxy config template, rendered with pipefleet's settings."""
    from jinja2 import Environment
    from ray.serve._private.haproxy import HAProxyConfig
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    # The section runs from its header to the next unindented line; it reads only `config`.
    section = re.search(r"^defaults\n.*?(?=^\w)", HAPROXY_CONFIG_TEMPLATE, re.S | re.M).group(0)
    config = HAProxyConfig(
        retry_on=HAPROXY_ENV["RAY_SERVE_HAPROXY_RETRY_ON"], retries=int(HAPROXY_ENV["RAY_SERVE_HAPROXY_RETRIES"])
    )
    return Environment().from_string(section).render(config=config)


def test_haproxy_retries_a_dead_replicas_request_once_and_buffers_request_bodies():
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    lines = [line.strip() for line in _rendered_defaults().splitlines()]
    assert "retry-on conn-failure empty-response" in lines
    assert "retries 1" in lines
    # Its own line of the defaults section: HAProxy replays only requests it holds whole.
    assert "option http-buffer-request" in lines
    # The value is rendered there and nowhere else, where a second line might not be valid.
    assert HAPROXY_CONFIG_TEMPLATE.count("retry_on") == 1


def test_the_python_ingress_leaves_haproxy_off(monkeypatch):
    monkeypatch.delenv("RAY_SERVE_ENABLE_HA_PROXY", raising=False)  # an exported value would win
    assert "RAY_SERVE_ENABLE_HA_PROXY" not in fast_path_env("python")
    assert fast_path_env("haproxy")["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
