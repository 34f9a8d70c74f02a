#!/usr/bin/env python3
"""Builds the request mix of benches/realistic.sh as a wrk Lua script.

Every request is a page load (`GET`, `Sec-Fetch-Dest: document`), the case that runs the whole
pipeline; no static assets are mixed in. A fixed seed makes the mix the same in every run.

- 5,000 visitors, each with a stable public IPv4 address (sent in `X-Forwarded-For`, which the
  servers trust from loopback), User-Agent, country (`X-Geo-Country`, a CDN fact the servers
  trust from loopback) and consent signals.
- 300 User-Agents: desktop and mobile Chrome, Firefox, Safari and Edge builds, plus 2% crawlers.
- Countries: US 35%, DE 12%, FR 8%, GB 8%, then 14 others.
- Consent: in the EEA and the UK 55% send a TCF v2 string consenting to every purpose, 15% one
  refusing every purpose, 30% nothing; in the US 10% send `Sec-GPC: 1`, 10% a `us_privacy`
  opt-out string, 5% a `us_privacy` string without opt-out; elsewhere nothing.
- 60% of visitors are returning: they carry the `ts-ec` cookie the `full` server minted for them
  before the run (only those it was permitted to mint for), so the provider keeps it.
- 20,000 requests drawn from the visitors (uniformly), replayed in a loop by wrk.

Usage: realistic_traffic.py MINT_URL OUT.lua
"""
import http.client
import random
import sys
import time
import urllib.parse

SEED = 11
VISITORS = 5000
REQUESTS = 20000
RETURNING = 0.60

COUNTRIES = [("US", 35), ("DE", 12), ("FR", 8), ("GB", 8), ("JP", 5), ("BR", 5), ("IN", 5),
             ("CA", 4), ("IT", 4), ("ES", 4), ("NL", 3), ("AU", 2), ("MX", 1), ("KR", 1),
             ("PL", 1), ("SE", 1), ("AT", 1)]
EEA_UK = {"DE", "FR", "GB", "IT", "ES", "NL", "PL", "SE", "AT"}


def user_agents(rng):
    agents = []
    desktops = ["Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7",
                "X11; Linux x86_64", "X11; Ubuntu; Linux x86_64"]
    mobiles = ["Linux; Android 14; Pixel 8", "Linux; Android 13; SM-S918B",
               "Linux; Android 12; moto g(60)", "Linux; Android 14; SM-A546B"]
    for v in range(112, 132):
        for os_ in desktops:
            agents.append(f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) "
                          f"Chrome/{v}.0.0.0 Safari/537.36")
        for os_ in mobiles:
            agents.append(f"Mozilla/5.0 ({os_}) AppleWebKit/537.36 (KHTML, like Gecko) "
                          f"Chrome/{v}.0.0.0 Mobile Safari/537.36")
        agents.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                      f"(KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0")
    for v in range(115, 133):
        agents.append(f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0")
        agents.append(f"Mozilla/5.0 (X11; Linux x86_64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0")
        agents.append(f"Mozilla/5.0 (Android 14; Mobile; rv:{v}.0) Gecko/{v}.0 Firefox/{v}.0")
    for major in (16, 17, 18):
        for minor in range(0, 7):
            agents.append(f"Mozilla/5.0 (iPhone; CPU iPhone OS {major}_{minor} like Mac OS X) "
                          f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{major}.{minor} "
                          f"Mobile/15E148 Safari/604.1")
            agents.append(f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                          f"(KHTML, like Gecko) Version/{major}.{minor} Safari/605.1.15")
            agents.append(f"Mozilla/5.0 (iPad; CPU OS {major}_{minor} like Mac OS X) "
                          f"AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{major}.{minor} "
                          f"Mobile/15E148 Safari/604.1")
    rng.shuffle(agents)
    return agents[:300]


BOTS = ["Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"]


def tc_string(purposes, updated_unix):
    """A TCF v2.2 core string (base64url) consenting to `purposes`."""
    bits = []

    def push(value, width):
        bits.extend((value >> i) & 1 for i in range(width - 1, -1, -1))

    def letters(code):
        return (ord(code[0]) - 65) << 6 | (ord(code[1]) - 65)

    ds = updated_unix * 10
    push(2, 6); push(ds, 36); push(ds, 36); push(7, 12); push(1, 12); push(1, 6)
    push(letters("EN"), 12); push(100, 12); push(4, 6); push(1, 1); push(0, 1)
    push(0b110000000000, 12)  # special features 1 and 2
    consents = 0
    for p in purposes:
        consents |= 1 << (24 - p)
    push(consents, 24); push(0, 24); push(0, 1); push(letters("DE"), 12)
    push(1, 16); push(0, 1); push(1, 1); push(1, 16); push(0, 1); push(0, 1); push(0, 12)
    while len(bits) % 6:
        bits.append(0)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[int("".join(map(str, bits[i:i + 6])), 2)]
                   for i in range(0, len(bits), 6))


def visitor(rng, agents, consent_all, consent_none):
    ip = "%d.%d.%d.%d" % (rng.choice([23, 31, 45, 62, 77, 81, 93, 104, 151, 176, 185, 203]),
                          rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
    country = rng.choices([c for c, _ in COUNTRIES], weights=[w for _, w in COUNTRIES])[0]
    ua = rng.choice(BOTS) if rng.random() < 0.02 else rng.choice(agents)
    headers = [("X-Forwarded-For", ip), ("X-Geo-Country", country), ("User-Agent", ua)]
    cookies = []
    roll = rng.random()
    if country in EEA_UK:
        if roll < 0.55:
            cookies.append("euconsent-v2=" + consent_all)
        elif roll < 0.70:
            cookies.append("euconsent-v2=" + consent_none)
    elif country == "US":
        if roll < 0.10:
            headers.append(("Sec-GPC", "1"))
        elif roll < 0.20:
            cookies.append("us_privacy=1YYN")
        elif roll < 0.25:
            cookies.append("us_privacy=1YNN")
    return {"headers": headers, "cookies": cookies, "returning": rng.random() < RETURNING}


def mint(url, visitors):
    """Gives each returning visitor the `ts-ec` the server mints for it (if it mints one)."""
    parsed = urllib.parse.urlparse(url)
    con = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    minted = 0
    for v in visitors:
        if not v["returning"]:
            continue
        headers = dict(v["headers"])
        headers["Sec-Fetch-Dest"] = "document"
        if v["cookies"]:
            headers["Cookie"] = "; ".join(v["cookies"])
        con.request("GET", "/", headers=headers)
        response = con.getresponse()
        response.read()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith("ts-ec="):
                v["cookies"].append(value.split(";", 1)[0])
                minted += 1
    return minted


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n") + '"'


def main():
    mint_url, out = sys.argv[1], sys.argv[2]
    rng = random.Random(SEED)
    agents = user_agents(rng)
    now = int(time.time())
    consent_all = tc_string(range(1, 12), now - 86400)
    consent_none = tc_string([], now - 86400)
    visitors = [visitor(rng, agents, consent_all, consent_none) for _ in range(VISITORS)]
    minted = mint(mint_url, visitors)
    requests = []
    paths = ["/", "/news", "/sport", "/weather"] + [f"/news/article-{n}" for n in range(200)]
    for _ in range(REQUESTS):
        v = rng.choice(visitors)
        lines = [f"GET {rng.choice(paths)} HTTP/1.1", "Host: news.example",
                 "Accept: text/html,application/xhtml+xml", "Sec-Fetch-Dest: document"]
        lines += [f"{k}: {val}" for k, val in v["headers"]]
        if v["cookies"]:
            lines.append("Cookie: " + "; ".join(v["cookies"]))
        requests.append("\r\n".join(lines) + "\r\n\r\n")
    with open(out, "w") as f:
        f.write("-- Generated by realistic_traffic.py: %d requests from %d visitors (%d with a minted ts-ec)\n"
                % (REQUESTS, VISITORS, minted))
        f.write("local requests = {\n")
        for r in requests:
            f.write("  " + lua_string(r) + ",\n")
        f.write("}\nlocal i = 0\nrequest = function()\n  i = i % #requests + 1\n  return requests[i]\nend\n")
    print(f"{REQUESTS} requests from {VISITORS} visitors, {len(agents)} User-Agents, "
          f"{minted} returning visitors with a minted ts-ec", file=sys.stderr)


if __name__ == "__main__":
    main()
