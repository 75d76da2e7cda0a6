"""HTTP sessions for the calls our functions make to the Graph API.

With `trust_env` on, requests re-reads proxy and CA-bundle settings from os.environ on every
request, scanning every variable (measured: 6 % of the conversation handler's CPU). A
function instance's environment does not change while it runs, so it is read once, here.
"""

from __future__ import annotations

import os
import urllib.request

import requests


def session() -> requests.Session:
    """A requests.Session that behaves as requests' default for this environment, read once."""
    http = requests.Session()
    if urllib.request.getproxies():
        return http  # proxies (and their no_proxy rules): keep requests' own per-request handling
    http.trust_env = False
    http.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return http
