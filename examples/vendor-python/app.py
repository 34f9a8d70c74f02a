"""Example geo provider in Python, built with componentize-py.

Locates a visitor from the client address the host trusts, with a small longest-prefix IP-range
table given in the provider's settings (`ranges`). It declares exactly one read, `client-ip`, so
the host fills nothing else; an address outside every range is `unknown` and the host uses its
`default_country`.

Settings (from `[geo.providers.NAME]` in the publisher's config):
  ranges   required. Comma-separated `CIDR=COUNTRY` or `CIDR=COUNTRY/REGION`, e.g.
           `192.0.2.0/24=DE, 198.51.100.0/24=US/CA, 2001:db8::/32=FR`.
"""

import ipaddress
import re

import wit_world
from componentize_py_types import Err
from wit_world.exports import geo
from wit_world.imports import types

ID = "example-geo-py"
VERSION = "0.1.0"
# See README.md: the vendor's licence feeds lookups into audience profiles.
REQUIRED_PERMISSIONS = ["create-ads-profile"]
MAX_RANGES = 10_000

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REGION = re.compile(r"^[A-Z0-9]{1,3}$")


class RangeTable:
    """Longest-prefix match over IPv4 and IPv6 networks."""

    def __init__(self, spec: str):
        self._by_prefix = {}  # (version, prefixlen) -> {network int: (country, region)}
        entries = [e.strip() for e in spec.split(",") if e.strip()]
        if not entries:
            raise ValueError("`ranges`: expected at least one `CIDR=COUNTRY[/REGION]` entry")
        if len(entries) > MAX_RANGES:
            raise ValueError(f"`ranges`: at most {MAX_RANGES} entries")
        for entry in entries:
            cidr, sep, place = entry.partition("=")
            if not sep:
                raise ValueError(f"`ranges`: `{entry}`: expected `CIDR=COUNTRY[/REGION]`")
            try:
                network = ipaddress.ip_network(cidr.strip(), strict=True)
            except ValueError as e:
                raise ValueError(f"`ranges`: `{cidr.strip()}`: {e}") from None
            country, _, region = place.strip().upper().partition("/")
            if not _COUNTRY.match(country) or (region and not _REGION.match(region)):
                raise ValueError(
                    f"`ranges`: `{place.strip()}`: expected an ISO 3166-1 alpha-2 country, "
                    "optionally `/` and an ISO 3166-2 subdivision code"
                )
            key = (network.version, network.prefixlen)
            self._by_prefix.setdefault(key, {})[int(network.network_address)] = (
                country,
                region or None,
            )
        # Longest prefixes first, so the most specific range wins.
        self._order = sorted(self._by_prefix, key=lambda k: -k[1])

    def lookup(self, address):
        bits = 32 if address.version == 4 else 128
        value = int(address)
        for version, prefixlen in self._order:
            if version != address.version:
                continue
            mask = ((1 << prefixlen) - 1) << (bits - prefixlen) if prefixlen else 0
            hit = self._by_prefix[(version, prefixlen)].get(value & mask)
            if hit is not None:
                return hit
        return None


def _settings(settings):
    ranges = None
    for s in settings:
        if s.key == "ranges":
            ranges = s.value
        else:
            raise ValueError(f"`{s.key}`: unknown setting")
    if ranges is None:
        raise ValueError("`ranges`: missing")
    return RangeTable(ranges)


# Settings arrive with every call; parsing them once per distinct value keeps a call cheap.
_cache = {"spec": None, "table": None}


def _table(settings):
    spec = tuple((s.key, s.value) for s in settings)
    if _cache["spec"] != spec:
        _cache["table"] = _settings(settings)
        _cache["spec"] = spec
    return _cache["table"]


def _address(ip):
    if isinstance(ip, types.IpAddress_Ipv4):
        return ipaddress.IPv4Address(bytes(ip.value))
    groups = ip.value
    return ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))


class Geo(wit_world.exports.Geo):
    def describe(self, settings):
        try:
            _table(settings)
        except ValueError as e:
            raise Err(str(e))
        return types.Manifest(
            id=ID,
            version=VERSION,
            required_permissions=list(REQUIRED_PERMISSIONS),
            reads=[types.Read_ClientIp()],
            call_budget_ms=None,
        )

    def locate(self, settings, evidence):
        try:
            table = _table(settings)
        except ValueError as e:
            raise Err(geo.GeoError_Config(str(e)))
        if evidence.client_ip is None:
            return geo.Location(country=None, region=None)
        hit = table.lookup(_address(evidence.client_ip))
        if hit is None:
            return geo.Location(country=None, region=None)
        country, region = hit
        return geo.Location(country=country, region=region)
