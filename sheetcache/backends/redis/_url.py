"""Cache URLs for Redis and Valkey, single servers and clusters, to redis-py clients.

==============================================  =============================================
``redis://``, ``rediss://`` (TLS)                one server (or a primary, or Sentinel's)
``redis+unix:///path.sock``, ``unix://``         one server on a unix socket
``redis+cluster://h:p[,h:p...]/``                Redis Cluster: startup nodes, rest discovered
``rediss+cluster://``                            Redis Cluster over TLS
``valkey://``, ``valkeys://``, ``valkey+unix://``  the same, for Valkey
``valkey+cluster://``, ``valkeys+cluster://``
==============================================  =============================================

Valkey speaks the Redis protocol (RESP) and runs these scripts unchanged, so redis-py serves
both: the Valkey fork of the client (valkey-py) tracks redis-py and adds nothing this
backend uses, and one client keeps one set of timeouts, retries and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sheetcache._errors import ConfigError
from sheetcache._urls import redact_url

__all__ = ["SCHEMES", "ParsedUrl", "parse_url", "split_url"]

# cache URL scheme -> (redis-py scheme, cluster?)
SCHEMES: dict[str, tuple[str, bool]] = {
    "redis": ("redis", False),
    "rediss": ("rediss", False),
    "redis+unix": ("unix", False),
    "unix": ("unix", False),
    "redis+cluster": ("redis", True),
    "rediss+cluster": ("rediss", True),
    "valkey": ("redis", False),
    "valkeys": ("rediss", False),
    "valkey+unix": ("unix", False),
    "valkey+cluster": ("redis", True),
    "valkeys+cluster": ("rediss", True),
}

#: Query options sheetcache reads itself; the others go to redis-py.
OWN_OPTIONS = ("prefix", "durability", "wait_timeout", "layout", "cooldown")

_HELP = (
    "use redis://host:6379/0, rediss://..., redis+unix:///path.sock, "
    "redis+cluster://host:7000,host:7001/ (or the valkey:// forms)"
)


@dataclass
class ParsedUrl:
    """A cache URL taken apart."""

    client_url: str
    """The URL redis-py reads (first startup node for a cluster), options included."""
    cluster: bool
    startup_nodes: list[tuple[str, int]] = field(default_factory=list)
    own: dict[str, str] = field(default_factory=dict)


def parse_url(url: str) -> ParsedUrl:
    """Split a cache URL into what redis-py reads and sheetcache's own options.

    Raises:
        ConfigError: not a Redis/Valkey URL, a bad host list, or a database other than 0
            on a cluster.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise ConfigError(f"{redact_url(url)!r} is not a Redis URL: {_HELP}")
    target, cluster = SCHEMES[scheme]
    netloc, _, tail = rest.partition("/")
    path, _, query_text = ("/" + tail).partition("?") if tail else ("", "", "")
    if "?" in netloc:  # "redis+cluster://h:1?x=y" without a slash before the query
        netloc, _, query_text = netloc.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_OPTIONS}
    theirs = urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])
    suffix = f"?{theirs}" if theirs else ""
    if not cluster:
        if target == "unix":
            # Not urlunsplit: it writes "unix:/path" (no "//") when there is no host.
            parts = urlsplit(f"unix://{rest}")
            return ParsedUrl(f"unix://{parts.netloc}{parts.path}{suffix}", False, own=own)
        return ParsedUrl(f"{target}://{netloc}{path}{suffix}", False, own=own)
    auth, at, hosts = netloc.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ConfigError(
                f"{redact_url(url)!r}: cluster nodes are host:port, comma-separated "
                f"({item.strip()!r} is not): {_HELP}"
            )
        nodes.append((host.strip("[]"), int(port)))
    if path.strip("/") not in ("", "0"):
        raise ConfigError(
            f"{redact_url(url)!r}: Redis Cluster has only database 0; drop {path!r} "
            "(use ?prefix=... to keep apps apart)"
        )
    first = f"{nodes[0][0]}:{nodes[0][1]}"
    client_url = f"{target}://{auth}{at}{first}{suffix}"
    return ParsedUrl(client_url, True, nodes, own)


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL redis-py reads and sheetcache's own options (kept for callers of 0.1)."""
    parsed = parse_url(url)
    return parsed.client_url, dict(parsed.own)
