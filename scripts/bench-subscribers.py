#!/usr/bin/env python3
"""Fill a subscriber table for the authenticated REGISTER benchmark
(scripts/bench-options.sh --register-auth): users user0..user<N-1> in DOMAIN,
all with PASSWORD, HA1s computed as H(user:domain:password).

  bench-subscribers.py kamailio DB N DOMAIN PASSWORD   # Kamailio's auth_db schema (ha1 = MD5)
  bench-subscribers.py wisp DB N DOMAIN PASSWORD       # Wisp's schema (migration 3): one HA1
                                                       # per algorithm; the router must have
                                                       # created the database first
"""
import hashlib
import sqlite3
import sys


def ha1(alg, user, domain, password):
    return hashlib.new(alg, f"{user}:{domain}:{password}".encode()).hexdigest()


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("kamailio", "wisp"):
        sys.exit(__doc__)
    kind, db, n, domain, password = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    conn = sqlite3.connect(db)
    users = (f"user{i}" for i in range(n))
    if kind == "kamailio":
        conn.executemany(
            "INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES (?, ?, ?, '')",
            ((u, domain, ha1("md5", u, domain, password)) for u in users),
        )
    else:
        conn.executemany(
            "INSERT INTO subscriber (username, domain, ha1, ha1_sha256, ha1_sha512_256)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                (u, domain, ha1("md5", u, domain, password), ha1("sha256", u, domain, password),
                 ha1("sha512_256", u, domain, password))
                for u in users
            ),
        )
    conn.commit()
    print(f"{n} subscribers in {db}", file=sys.stderr)


if __name__ == "__main__":
    main()
