"""Sign-in and token-check throughput through the gateway, and the gateway time of one token
check (from the `Server-Timing: auth;dur=<ms>` header of GET /api/v1/me).

    .venv/bin/python -m bench.auth                     # starts a private stack (like the tests)
    BENCH_GATEWAY_URL=http://127.0.0.1:8000 .venv/bin/python -m bench.auth   # against `make run`

Writes bench/results/auth.json."""
import os
import re
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PASSWORD = "bench-password-123"
THREADS = int(os.environ.get("BENCH_THREADS", "16"))
SIGN_INS = int(os.environ.get("BENCH_SIGN_INS", "200"))
CHECKS = int(os.environ.get("BENCH_CHECKS", "5000"))
_TIMING = re.compile(r"auth;dur=([0-9.]+)")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def run(base):
    local = requests.Session()
    email = f"bench-{uuid.uuid4().hex[:8]}@example.org"
    resp = local.post(f"{base}/api/v1/signup", json={
        "organization": {"name": "Bench Org", "description": "benchmarks"},
        "owner": {"name": "Bench Owner", "email": email, "password": PASSWORD}})
    resp.raise_for_status()
    assert resp.json()["token"]

    sessions = {}

    def session():
        import threading
        s = sessions.get(threading.get_ident())
        if s is None:
            s = sessions[threading.get_ident()] = requests.Session()
        return s

    def sign_in(_):
        r = session().post(f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        tokens = list(pool.map(sign_in, range(SIGN_INS)))
    sign_in_secs = time.perf_counter() - started

    # First check of each fresh token: the gateway asks identity (cache miss).
    miss_ms = []
    for t in tokens[:50]:
        r = local.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {t}"})
        miss_ms.append(float(_TIMING.search(r.headers["Server-Timing"]).group(1)))

    def check(i):
        t = tokens[i % len(tokens)]
        r = session().get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {t}"})
        assert r.status_code == 200, r.text
        return float(_TIMING.search(r.headers["Server-Timing"]).group(1))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(check, range(THREADS * 10)))  # warm-up
        started = time.perf_counter()
        hit_ms = list(pool.map(check, range(CHECKS)))
    check_secs = time.perf_counter() - started

    result = {
        "threads": THREADS,
        "sign_ins": SIGN_INS,
        "sign_ins_per_second": round(SIGN_INS / sign_in_secs, 1),
        "token_checks": CHECKS,
        "token_checks_per_second": round(CHECKS / check_secs, 1),
        "gateway_auth_ms_cached": {"median": round(statistics.median(hit_ms), 4),
                                   "p99": round(percentile(hit_ms, 0.99), 4),
                                   "max": round(max(hit_ms), 4)},
        "gateway_auth_ms_uncached": {"median": round(statistics.median(miss_ms), 3),
                                     "p99": round(percentile(miss_ms, 0.99), 3)},
        "note": "token checks go through GET /api/v1/me (no RPC besides authentication); gateway "
                "auth time is measured inside the gateway and reported in Server-Timing",
    }
    return result


def main():
    from bench.harness import private_stack, write_results
    base = os.environ.get("BENCH_GATEWAY_URL")
    if base:
        result = run(base.rstrip("/"))
    else:
        with private_stack() as stack:
            result = run(stack.url)
    write_results("auth", result)
    print(f"sign-in:      {result['sign_ins_per_second']:>9.1f} /s  ({SIGN_INS} sign-ins, {THREADS} threads)")
    print(f"token check:  {result['token_checks_per_second']:>9.1f} /s  ({CHECKS} checks via GET /api/v1/me)")
    c, u = result["gateway_auth_ms_cached"], result["gateway_auth_ms_uncached"]
    print(f"gateway time per check, cached:   median {c['median']} ms, p99 {c['p99']} ms")
    print(f"gateway time per check, uncached: median {u['median']} ms, p99 {u['p99']} ms")


if __name__ == "__main__":
    main()
