"""Hello World -- the seeds' first ser.cfg / openser.cfg, as a Wisp plugin in Python.

The "Hello World" script of the SER and OpenSER guides (shared/seeds/002_*.txt,
004_*.txt), line for line like plugins/hello-world (Rust): sanity checks
(Max-Forwards, message size), REGISTER -> save("location"), requests for a
local user -> lookup("location") or 404, everything else relayed.

Build: `make plugins` (componentize-py, to target/plugins/hello_world_py.wasm).
The component imports wasi:* (the Python runtime needs them): its manifest
entry must grant `[plugin.capabilities] wasi = true`.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import message, proxy, registrar, rr, sl, tm, types

# The seed's max_len: requests this long or longer get 513.
max_len = 8192


class WitWorld(wit_world.WitWorld):
    def init(self, params):
        global max_len
        for key, value in params:
            if key == "max_len":
                try:
                    max_len = int(value)
                except ValueError:
                    raise Err(f"max_len: expected a number, got {value!r}")

    def route(self, msg):
        # if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
        if not proxy.mf_process_maxfwd_header(msg, 10):
            return sl.send_reply(msg, 483, "Too Many Hops")
        # if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
        if msg.len() >= max_len:
            return sl.send_reply(msg, 513, "Message too big")
        register = isinstance(msg.method(), message.RequestMethod_Register)
        # if (!method=="REGISTER") { record_route(); }
        if not register:
            rr.record_route(msg)
        # if (loose_route()) { append_hf("P-hint: rr-enforced\r\n"); route(1); }
        if rr.loose_route(msg):
            msg.append_hf("P-hint: rr-enforced")
            return relay(msg)
        # if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); }
        if not proxy.ruri_is_myself(msg):
            msg.append_hf("P-hint: outbound")
            return relay(msg)
        # if (method=="REGISTER") { save("location"); exit; }
        if register:
            return registrar.save(msg, "location")
        # if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
        try:
            registrar.lookup(msg, "location")
        except Err as e:
            if isinstance(e.value, types.Error_NotFound):
                return sl.send_reply(msg, 404, "Not Found")
            raise
        # append_hf("P-hint: usrloc applied\r\n");
        msg.append_hf("P-hint: usrloc applied")
        return relay(msg)

    def failure_route(self, name, msg):
        pass

    def onreply_route(self, name, msg):
        pass


def relay(msg):
    """route[1]: if (!t_relay()) { sl_reply_error(); }"""
    try:
        tm.t_relay(msg)
    except Err:
        sl.reply_error(msg)
