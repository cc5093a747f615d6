"""wasi-probe: a test fixture (tests/tests/wasi.rs) that tries, from Python,
what WASI could give a plugin and answers with what happened.

The Request-URI's user names the probe; the reply is `200 <outcome>`:

  file    open a file              -> "refused <exception>" when no directory is preopened
  listdir list "/"                 -> "refused <exception>"
  socket  connect a TCP socket     -> "refused <exception>"
  dns     resolve a name           -> "refused <exception>"
  env     the environment and args -> "env <n vars> args <n non-empty>"
  print   print to stdout/stderr   -> "printed" (the lines go to the router's log)
  sleep   time.sleep(1)            -> the call traps (a blocking wait), 500
  clock   read the clocks          -> "clock ok"
anything else: 404.
"""

import os
import sys
import time

import wit_world
from wit_world.imports import sl


def attempt(action):
    try:
        action()
    except Exception as e:  # what WASI answered
        return "refused " + type(e).__name__
    return "allowed"


def connect():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 5060))


def resolve():
    import socket

    socket.getaddrinfo("localhost", 5060)


def clocks():
    time.time()
    time.monotonic()
    return "clock ok"


class WitWorld(wit_world.WitWorld):
    def init(self, params):
        pass

    def route(self, msg):
        probe = msg.ruri_user()
        if probe == "file":
            outcome = attempt(lambda: open("/etc/passwd").read())
        elif probe == "listdir":
            outcome = attempt(lambda: os.listdir("/"))
        elif probe == "socket":
            outcome = attempt(connect)
        elif probe == "dns":
            outcome = attempt(resolve)
        elif probe == "env":
            outcome = f"env {len(os.environ)} args {len([a for a in sys.argv if a])}"
        elif probe == "print":
            print("probe says hello on stdout", flush=True)
            print("probe says hello on stderr", file=sys.stderr, flush=True)
            outcome = "printed"
        elif probe == "sleep":
            time.sleep(1)
            outcome = "slept"
        elif probe == "clock":
            outcome = clocks()
        else:
            return sl.send_reply(msg, 404, "Not Found")
        sl.send_reply(msg, 200, outcome)

    def failure_route(self, name, msg):
        pass

    def onreply_route(self, name, msg):
        pass
