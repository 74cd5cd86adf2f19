"""The client's address behind trusted reverse proxies.

Rate limits and the audit trail count people by address. Behind a TLS proxy the TCP
peer is the proxy, so every customer would share one address; the proxy says who its
client was in ``X-Forwarded-For`` (or the standard ``Forwarded``), but anyone can send
those headers, so they are believed only as far as ``KEYSHOP_TRUSTED_PROXIES`` says:

- empty (the default): no proxy; the TCP peer is the client and forwarding headers are
  ignored.
- a number ``N``: exactly N proxies of ours stand in front of the shop; each appended the
  address it received the request from, so the client is the N-th entry from the right
  of the chain (the forwarded addresses followed by the TCP peer). Entries further left
  were written by the client and are ignored.
- networks (``10.0.0.0/8,192.168.1.7``): a peer or chain entry inside one of them is a
  proxy of ours; the client is the right-most address that is not. A request whose
  peer is not a trusted proxy is taken at its peer, whatever its headers say.

``X-Forwarded-For`` is read when present, else ``Forwarded`` (RFC 7239 ``for=``). An
entry that is not an IP address (``unknown``, an obfuscated ``_name``, garbage) ends the
walk: the address to its right is used.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HOPS = 16
MAX_CHAIN = 64  # forwarding entries read at most (the right-most ones)


@dataclass(frozen=True)
class TrustedProxies:
    """What ``KEYSHOP_TRUSTED_PROXIES`` says: a hop count, networks, or nothing."""

    hops: int = 0
    networks: tuple[IPNetwork, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.hops or self.networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks)


@functools.lru_cache(maxsize=16)
def parse_trusted_proxies(value: str | None) -> TrustedProxies:
    """``""`` → none; ``"2"`` → two hops; ``"10.0.0.0/8, ::1"`` → networks.
    ValueError with a clear message otherwise."""
    text = (value or "").strip()
    if not text:
        return TrustedProxies()
    if text.isdigit():
        hops = int(text)
        if not 0 <= hops <= MAX_HOPS:
            raise ValueError(f"a hop count must be between 0 and {MAX_HOPS}")
        return TrustedProxies(hops=hops)
    networks: list[IPNetwork] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(
                f"{part!r} is neither a hop count nor an IP network (10.0.0.0/8, 192.0.2.7)"
            ) from None
    return TrustedProxies(networks=tuple(networks))


def _address(text: str) -> IPAddress | None:
    value = text.strip().strip('"')
    if value.startswith("["):  # [2001:db8::1]:4711 (Forwarded) or [2001:db8::1]
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # 192.0.2.1:8080
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _forwarded_for(headers: Mapping[str, str]) -> list[str]:
    """The forwarded chain, left (farthest) to right (nearest), raw entries."""
    xff = headers.get("x-forwarded-for")
    if xff is not None:
        return [p.strip() for p in xff.split(",") if p.strip()][-MAX_CHAIN:]
    forwarded = headers.get("forwarded")
    if forwarded is None:
        return []
    entries: list[str] = []
    for element in forwarded.split(","):
        found = "unknown"  # an element without for= tells nothing we can use
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == "for":
                found = value.strip()
        entries.append(found)
    return entries[-MAX_CHAIN:]


def client_address(
    *, peer: str | None, headers: Mapping[str, str], trusted: TrustedProxies
) -> str | None:
    """The client's address for a request from ``peer`` with ``headers`` (lower-case
    names). See the module docstring for the rules."""
    peer_ip = _address(peer) if peer else None
    if not trusted.enabled or peer_ip is None:
        return str(peer_ip) if peer_ip is not None else (peer or None)
    chain = _forwarded_for(headers)
    if trusted.hops:
        if not chain:
            return str(peer_ip)  # came straight to us, past the proxy
        # Each of our N proxies appended one entry: the client is the N-th from the right
        # (fewer entries than hops: every one of them was written by a proxy of ours).
        index = max(0, len(chain) - trusted.hops)
        client = peer_ip
        for entry in reversed(chain[index:]):
            parsed = _address(entry)
            if parsed is None:
                break
            client = parsed
        return str(client)
    if not trusted.trusts(peer_ip):
        return str(peer_ip)
    client = peer_ip
    for entry in reversed(chain):
        parsed = _address(entry)
        if parsed is None:
            break
        client = parsed
        if not trusted.trusts(parsed):
            break
    return str(client)
