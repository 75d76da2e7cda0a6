"""Outbound HTTP sessions read the environment once and then behave as requests would."""

from __future__ import annotations

import pytest

from shared.cloud import outbound


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_proxies_the_environment_is_read_once_keeping_the_ca_bundle(no_proxies: pytest.MonkeyPatch) -> None:
    no_proxies.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    http = outbound.session()
    assert http.trust_env is False
    assert http.verify == "/etc/ssl/certs/ca-certificates.crt"


def test_without_a_ca_bundle_certificates_are_still_verified(no_proxies: pytest.MonkeyPatch) -> None:
    no_proxies.delenv("REQUESTS_CA_BUNDLE", raising=False)
    no_proxies.delenv("CURL_CA_BUNDLE", raising=False)
    assert outbound.session().verify is True


def test_with_a_proxy_requests_keeps_its_per_request_proxy_rules(no_proxies: pytest.MonkeyPatch) -> None:
    no_proxies.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    no_proxies.setenv("NO_PROXY", "127.0.0.1")
    http = outbound.session()
    assert http.trust_env is True
    proxies = http.merge_environment_settings("https://graph.facebook.com/v23.0/1/messages", {}, None, None, None)
    assert proxies["proxies"]["https"] == "http://proxy.internal:3128"
