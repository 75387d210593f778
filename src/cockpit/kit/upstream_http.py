"""The HTTP client for upstream providers: one aiohttp pool per process, every address checked.

Used by the gateway (every LLM call) and by a provider's "Test connection", so that the address
checked is the address connected to:

- a bounded pool (``limit`` in all, ``limit_per_host`` per upstream host; calls beyond wait for a
  free connection), whose idle connections are closed after ``keepalive_seconds``: before the
  upstream closes them itself (uvicorn and node close idle connections after 5 s), so a request is
  not sent on a connection that the upstream is closing. A POST that fails on a reused connection
  is never retried (aiohttp retries only idempotent methods): the upstream may have started, and
  billed, the completion;
- the read timeout is the longest silence tolerated from the upstream, before the first byte and
  between two pieces of the body (aiohttp's ``sock_read``, restarted by every piece received and
  stopped while the body waits unread for a slow caller); no total timeout;
- host names are resolved by :class:`GuardedResolver`, which keeps only the addresses that
  :func:`cockpit.kit.urls.check_address` allows (all of them, tried in turn), so a name that starts
  resolving to a metadata or private address (DNS rebinding) is refused when connecting; an IP
  literal (which aiohttp connects to without resolving) is checked when its target is prepared;
- through a proxy the proxy resolves the target: Cockpit then resolves the target's host name
  itself and checks it before sending (a name Cockpit cannot resolve is refused). The proxy's own
  address is not checked: the deployment chose it;
- proxy (``COCKPIT_UPSTREAM_PROXY``, else ``HTTPS_PROXY``/``HTTP_PROXY``; ``NO_PROXY`` honoured),
  CA bundle and client certificate from the settings;
- bodies pass through as sent (no decompression, no ``Accept-Encoding`` asked for), redirects are
  never followed, and no cookie is kept (an upstream's cookie must not follow another account's
  call to the same host).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from cockpit.kit.errors import InvalidInput
from cockpit.kit.urls import check_address

if TYPE_CHECKING:
    from cockpit.config import Settings

# Resolved (and allowed) addresses are kept this long. Only addresses that passed the check are
# kept, so the cache cannot let a rebound name through; it only saves look-ups.
DNS_CACHE_SECONDS = 5


# The standard library's NO_PROXY matching (host names, domain suffixes, "*"), given the value.
_proxy_bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


class AddressRefused(OSError):
    """Every address of an upstream host is one the gateway must not connect to."""


class UpstreamRefused(aiohttp.ClientConnectionError):
    """A call refused before sending: its target is an address the gateway must not reach."""


class GuardedResolver(AbstractResolver):
    """aiohttp's threaded resolver, returning only the addresses that the upstream rules allow."""

    def __init__(self, *, allow_private: bool, trusted_hosts: frozenset[str] = frozenset()) -> None:
        self.allow_private = allow_private
        self.trusted_hosts = trusted_hosts  # proxies: chosen by the deployment, not checked
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if host.lower().rstrip(".") in self.trusted_hosts:
            return results
        allowed: list[ResolveResult] = []
        refusal = ""
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"].split("%", 1)[0])
                check_address(address, allow_private=self.allow_private)
            except InvalidInput as exc:
                refusal = refusal or exc.message
                continue
            except ValueError:
                continue
            allowed.append(result)
        if not allowed:
            raise AddressRefused(errno.EACCES, refusal or f"The host name '{host}' did not resolve.")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True, slots=True)
class Target:
    """Where a call goes, prepared once per upstream URL."""

    url: URL
    proxy: URL | None = None
    refused: str | None = None  # the URL's host is an IP literal that the rules refuse
    check_name: bool = False  # proxied to a host name: Cockpit resolves and checks it before sending


class UpstreamClient:
    """The upstream pool of one process; the aiohttp session is made on first use, in the running
    loop, and closed by :meth:`aclose`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limit: int = 512,
        limit_per_host: int = 256,
        keepalive_seconds: float = 4.0,
        proxy: str | None = None,
        ca_bundle: Path | None = None,
        client_cert: Path | None = None,
        client_key: Path | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.limit, self.limit_per_host = limit, limit_per_host
        self.keepalive_seconds = keepalive_seconds
        self.proxy = URL(proxy) if proxy else None
        self.ca_bundle, self.client_cert, self.client_key = ca_bundle, client_cert, client_key
        # The environment's proxies and NO_PROXY, read once (aiohttp's trust_env would read them,
        # and ~/.netrc, in a thread on every call).
        environment = urllib.request.getproxies_environment()
        self._env_proxies = {
            scheme: URL(value) for scheme, value in environment.items() if scheme in ("http", "https")
        }
        self._no_proxy = {"no": environment["no"]} if environment.get("no") else {}
        self.resolver: GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._checked: dict[tuple[str, int], float] = {}  # proxied host names checked, until when

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamClient:
        return cls(
            allow_private=settings.allow_private_upstreams,
            limit=settings.upstream_pool_limit,
            limit_per_host=settings.upstream_pool_limit_per_host,
            keepalive_seconds=settings.upstream_keepalive_seconds,
            proxy=settings.upstream_proxy,
            ca_bundle=settings.upstream_ca_bundle,
            client_cert=settings.upstream_client_cert,
            client_key=settings.upstream_client_key,
        )

    # ---- targets ----

    def target(self, url: str | URL) -> Target:
        """The prepared target of a URL: its proxy, and the verdict on an IP-literal host."""
        url = URL(url) if isinstance(url, str) else url
        host = url.host or ""
        refused: str | None = None
        literal = True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            literal = False
        else:
            try:
                check_address(address, allow_private=self.allow_private)
            except InvalidInput as exc:
                refused = exc.message
        proxy = self._proxy_for(url)
        return Target(url=url, proxy=proxy, refused=refused, check_name=proxy is not None and not literal)

    def _proxy_for(self, url: URL) -> URL | None:
        if url.host and self._no_proxy and _proxy_bypass(url.host, self._no_proxy):
            return None
        return self.proxy or self._env_proxies.get(url.scheme)

    def _proxy_hosts(self) -> frozenset[str]:
        proxies = [self.proxy, *self._env_proxies.values()]
        return frozenset(p.host.lower().rstrip(".") for p in proxies if p is not None and p.host)

    # ---- the session ----

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_bundle) if self.ca_bundle else None)
        if self.client_cert is not None:
            context.load_cert_chain(
                str(self.client_cert), str(self.client_key) if self.client_key is not None else None
            )
        return context

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self.resolver = GuardedResolver(
                allow_private=self.allow_private, trusted_hosts=self._proxy_hosts()
            )
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit_per_host,
                keepalive_timeout=self.keepalive_seconds,
                resolver=self.resolver,
                ttl_dns_cache=DNS_CACHE_SECONDS,
                ssl=self._ssl_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # the environment's proxies are read once, above
            )
        return self._session

    def timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        """No total limit: ``read`` is the longest silence, ``connect`` bounds each connection
        attempt; waiting for a free pooled connection is bounded by both together."""
        key = (connect, read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            pool_wait = connect + read if connect is not None and read is not None else None
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=pool_wait, sock_connect=connect, sock_read=read
            )
        return timeout

    # ---- calls ----

    async def send(
        self,
        method: str,
        target: Target,
        *,
        headers: Any,
        data: bytes | None = None,
        timing: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """The upstream's response, headers read and body not yet (read it, or ``release()`` it).
        Raises ``TimeoutError`` (aiohttp's timeouts are ones) or ``aiohttp.ClientError``."""
        if target.refused is not None:
            raise UpstreamRefused(target.refused)
        if target.check_name:
            await self._check_name(target.url)
        return await self.session().request(
            method,
            target.url,
            headers=headers,
            data=data,
            proxy=target.proxy,
            timeout=timing,
            allow_redirects=False,
        )

    async def _check_name(self, url: URL) -> None:
        host, port = url.host or "", url.port or 0
        key = (host, port)
        now = time.monotonic()
        if self._checked.get(key, 0.0) > now:
            return
        resolver = self.resolver
        if resolver is None:
            self.session()
            resolver = self.resolver
            assert resolver is not None
        try:
            await resolver.resolve(host, port, family=socket.AF_UNSPEC)
        except OSError as exc:
            reason = exc.strerror or f"the host name '{host}' cannot be resolved"
            raise UpstreamRefused(f"Cannot connect to host {host}:{port} [{reason}]") from None
        if len(self._checked) > 1000:
            self._checked.clear()
        self._checked[key] = now + DNS_CACHE_SECONDS

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        if self.resolver is not None:
            await self.resolver.close()
            self.resolver = None
        # Let the transports that were just closed finish (aiohttp's advice for a clean shutdown).
        await asyncio.sleep(0)
