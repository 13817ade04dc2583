"""How long a revocation answered at one cluster node takes to stop the token at another.

    python3 propagation.py PORT_A PORT_B COUNT

For each of COUNT tokens: issued at node A (client opaque-bearer, secret demo-secret), used once
at node B so B holds it, revoked at A; the delay runs from A's 200 to the first 401 from B,
which is polled on a kept-alive connection. Prints p50, p90, p99 and the maximum.
"""

import base64
import http.client
import json
import sys
import time

BASIC = "Basic " + base64.b64encode(b"opaque-bearer:demo-secret").decode()
FORM = {"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded"}


def post(conn, path, body):
    conn.request("POST", path, body, FORM)
    answer = conn.getresponse()
    data = answer.read()
    return answer.status, data


def call(conn, token):
    conn.request("GET", "/api/x", headers={"Authorization": "Bearer " + token})
    answer = conn.getresponse()
    answer.read()
    return answer.status


def main():
    port_a, port_b, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    a = http.client.HTTPConnection("127.0.0.1", port_a)
    b = http.client.HTTPConnection("127.0.0.1", port_b)
    delays = []
    polls = 0
    for _ in range(count):
        status, data = post(a, "/oauth2/token", "grant_type=client_credentials")
        assert status == 200, (status, data)
        token = json.loads(data)["access_token"]
        assert call(b, token) == 200, "node B does not accept a token node A issued"
        status, _ = post(a, "/oauth2/revoke", "token=" + token)
        assert status == 200
        revoked = time.perf_counter()
        deadline = revoked + 5
        while True:
            polls += 1
            status = call(b, token)
            if status == 401:
                delays.append((time.perf_counter() - revoked) * 1000)
                break
            assert status == 200, status
            assert time.perf_counter() < deadline, "node B still accepts the token after 5 s"
    delays.sort()

    def pct(p):
        return delays[min(len(delays) - 1, int(len(delays) * p / 100))]

    print(
        f"revocation at node A to the first 401 at node B, {len(delays)} revocations: "
        f"p50 {pct(50):.2f} ms, p90 {pct(90):.2f} ms, p99 {pct(99):.2f} ms, max {delays[-1]:.2f} ms "
        f"(target p99 <= 50 ms; {polls / len(delays):.1f} polls of B per revocation)"
    )


if __name__ == "__main__":
    main()
