"""Gunicorn's HTTP/2 settings as the worker reads them: values, limits and start-up messages.

In-process against Gunicorn's real ``Config`` (settings.py is the only reader of it); what a
running worker does with them is in tests/test_http2.py.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest
from gunicorn.config import Config

from asgi_worker import settings as settings_module
from asgi_worker.settings import Settings, SettingsError


def _settings(**values: Any) -> Settings:
    cfg = Config()
    for name, value in values.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return settings_module.from_cfg(cfg, parser="httptools", max_requests=0)


def _h2c_settings_present() -> bool:
    return "http2_cleartext" in Config().settings


def test_defaults_are_gunicorns() -> None:
    settings = _settings()
    assert settings.http_protocols == ("h1",)
    assert not settings.http2
    assert settings.http2_max_concurrent_streams == 100
    assert settings.http2_initial_window_size == 65535
    assert settings.http2_max_frame_size == 16384
    assert settings.http2_max_header_list_size == 65536
    assert not [w for w in settings.warnings if "http" in w]


def test_values_are_read_in_order_of_preference() -> None:
    pytest.importorskip("h2")
    if "http_protocols" not in Config().settings:
        pytest.skip("this Gunicorn has no HTTP/2 settings")
    settings = _settings(http_protocols="h2,h1", http2_max_concurrent_streams="7",
                         http2_initial_window_size="1048576", http2_max_frame_size="32768",
                         http2_max_header_list_size="0")
    assert settings.http_protocols == ("h2", "h1")
    assert settings.http2
    assert (settings.http2_max_concurrent_streams, settings.http2_initial_window_size,
            settings.http2_max_frame_size) == (7, 1048576, 32768)
    # 0 is "unlimited" in Gunicorn's words; here a large bound, as for limit_request_*.
    assert settings.http2_max_header_list_size == settings_module.UNLIMITED_LINE


def test_http2_without_tls_or_cleartext_is_reported() -> None:
    pytest.importorskip("h2")
    if "http_protocols" not in Config().settings:
        pytest.skip("this Gunicorn has no HTTP/2 settings")
    warnings = " ".join(_settings(http_protocols="h2,h1").warnings)
    assert "HTTP/2 can never be negotiated" in warnings


def test_cleartext_without_h2_is_reported() -> None:
    if not _h2c_settings_present():
        pytest.skip("this Gunicorn has no http2_cleartext")
    settings = _settings(http2_cleartext="prior-knowledge")
    assert settings.http2_cleartext == "prior-knowledge"
    assert any("has no effect: http_protocols has no h2" in w for w in settings.warnings)


def test_h3_is_reported_as_not_available() -> None:
    cfg = Config()
    if "http_protocols" not in cfg.settings:
        pytest.skip("this Gunicorn has no HTTP/2 settings")
    # Gunicorn 27's validator refuses h3 itself; a version that accepts it gets this answer.
    cfg.settings["http_protocols"].value = ["h3", "h1"]
    settings = settings_module.from_cfg(cfg, parser="httptools", max_requests=0)
    assert settings.http_protocols == ("h1",)
    assert any("h3 (HTTP/3) is not available" in w for w in settings.warnings)


@pytest.mark.parametrize(("name", "value"), [
    ("http2_max_frame_size", 1024), ("http2_max_concurrent_streams", 0),
    ("http2_initial_window_size", 2**31)])
def test_out_of_range_values_stop_the_worker(name: str, value: int) -> None:
    cfg = Config()
    if name not in cfg.settings:
        pytest.skip("this Gunicorn has no HTTP/2 settings")
    cfg.settings[name].value = value  # past Gunicorn's validator, as an old one may let it
    with pytest.raises(SettingsError, match=name):
        settings_module.from_cfg(cfg, parser="httptools", max_requests=0)


def test_http2_without_the_h2_package_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    if "http_protocols" not in Config().settings:
        pytest.skip("this Gunicorn has no HTTP/2 settings")
    cfg = Config()
    cfg.settings["http_protocols"].value = ["h2", "h1"]  # set() would need h2 on Gunicorn 27
    monkeypatch.setitem(sys.modules, "h2", None)  # `import h2` now raises ImportError
    with pytest.raises(SettingsError, match=r"pip install 'asgi-worker\[http2\]'"):
        settings_module.from_cfg(cfg, parser="httptools", max_requests=0)



@pytest.mark.parametrize(("value", "expected"), [("on", True), ("off", False), (None, True)])
def test_the_http2_fast_path_option(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                    expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("ASGI_WORKER_HTTP2_FASTPATH", raising=False)
    else:
        monkeypatch.setenv("ASGI_WORKER_HTTP2_FASTPATH", value)
    settings = settings_module.from_cfg(Config(), parser="httptools", max_requests=0)
    assert settings.http2_fastpath is expected


def test_a_bad_http2_fast_path_value_stops_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASGI_WORKER_HTTP2_FASTPATH", "maybe")
    with pytest.raises(SettingsError, match="ASGI_WORKER_HTTP2_FASTPATH='maybe'"):
        settings_module.from_cfg(Config(), parser="httptools", max_requests=0)
