"""Realistic-looking web traffic for the insight pages' tests and screenshots: visitors in sessions of
pageviews (paths, referrers, UTM sources, mediums and campaigns, countries, browsers, OS, devices), some
signing up (identify merges an anonymous id into the user) and buying (a price), over the last `days` days.
Deterministic per seed."""

import random
import time
import uuid
from datetime import datetime, timezone

from support import http

PATHS = ["/", "/pricing", "/docs", "/docs/install", "/blog", "/blog/sqlite-is-enough", "/about", "/signup",
         "/changelog", "/docs/api"]
REFERRERS = [("$direct", 5), ("www.google.com", 6), ("news.ycombinator.com", 3), ("github.com", 2),
             ("duckduckgo.com", 1), ("t.co", 1)]
UTM = [None, None, None, "newsletter", "twitter", "producthunt"]
MEDIUM = {"newsletter": "email", "twitter": "social", "producthunt": "referral"}  # a source's utm_medium
CAMPAIGNS = ["launch", "spring-sale", None]
COUNTRIES = [("US", 6), ("DE", 3), ("GB", 2), ("FR", 2), ("IN", 2), ("BR", 1), (None, 1)]  # None: not sent
BROWSERS = [("Chrome", 10), ("Safari", 5), ("Firefox", 3), ("Edge", 1)]
OSES = [("Windows", 5), ("Mac OS X", 5), ("iOS", 3), ("Android", 3), ("Linux", 2)]


def _pick(rng, weighted):
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def traffic(visitors=200, days=30, seed=7, now=None, extra=None):
    """A list of events (batch items) with timestamps in the last `days` days before `now`."""
    rng = random.Random(seed)
    now_ms = int((now or time.time()) * 1000)
    out = []
    for v in range(visitors):
        anon = f"anon-{seed}-{v}"
        browser, os_ = _pick(rng, BROWSERS), _pick(rng, OSES)
        device = "Mobile" if os_ in ("iOS", "Android") else "Desktop"
        user = f"user-{seed}-{v}@example.com" if rng.random() < 0.35 else None
        first = now_ms - int(rng.random() * days * 86_400_000)
        # Campaigns and countries from their own generator, so the other values stay those of earlier versions.
        own = random.Random(f"{seed}-{v}")
        country = _pick(own, COUNTRIES)
        start = first
        identified = False
        for _s in range(1 + int(rng.expovariate(0.7))):
            if start > now_ms - 60_000:
                break
            sid = str(uuid.UUID(int=rng.getrandbits(128)))
            ref = _pick(rng, REFERRERS)
            utm = rng.choice(UTM)
            t = start
            did = user if identified else anon
            for p in range(1 + int(rng.expovariate(0.5))):
                path = "/" if p == 0 and rng.random() < 0.5 else rng.choice(PATHS)
                props = {"$session_id": sid, "$current_url": f"https://shop.example{path}", "$pathname": path,
                         "$host": "shop.example", "$browser": browser, "$os": os_, "$device_type": device,
                         "$referring_domain": ref, "$lib": "web"}
                if country:
                    props["$geoip_country_code"] = country  # as a proxy or client sends it (phlite does no GeoIP)
                if p == 0 and utm:
                    props["utm_source"], props["utm_medium"] = utm, MEDIUM[utm]
                    campaign = own.choice(CAMPAIGNS)
                    if campaign:
                        props["utm_campaign"] = campaign
                out.append({"event": "$pageview", "distinct_id": did, "timestamp": iso(t), "properties": props,
                            "uuid": str(uuid.UUID(int=rng.getrandbits(128)))})
                t += int(rng.uniform(3, 90) * 1000)
            if user and not identified and rng.random() < 0.6:
                out.append({"event": "$identify", "distinct_id": user, "timestamp": iso(t),
                            "properties": {"$anon_distinct_id": anon, "$session_id": sid,
                                           "$set": {"email": user, "plan": rng.choice(["free", "pro"])}}})
                out.append({"event": "signed up", "distinct_id": user, "timestamp": iso(t + 1000),
                            "properties": {"$session_id": sid, "$browser": browser}})
                identified = True
                did = user
            if identified and rng.random() < 0.4:
                out.append({"event": "purchase", "distinct_id": did, "timestamp": iso(t + 5000),
                            "properties": {"$session_id": sid, "price": rng.choice([9, 19, 49, 99]),
                                           "$browser": browser}})
            start = t + int(rng.expovariate(1 / 3) * 86_400_000) + 3_600_000
            if start > now_ms:
                break
    out.extend(extra or [])
    out.sort(key=lambda e: e.get("timestamp") or iso(now_ms))
    return out


def send_all(project, events, chunk=500):
    for i in range(0, len(events), chunk):
        r = http("POST", project.url + "/batch/", {"api_key": project.token, "batch": events[i:i + chunk]})
        assert r.status == 200, r.body
    project.flush()
