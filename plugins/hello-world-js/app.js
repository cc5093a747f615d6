// Hello World -- the seeds' first ser.cfg / openser.cfg, as a Wisp plugin in JavaScript.
//
// The "Hello World" script of the SER and OpenSER guides (shared/seeds/002_*.txt,
// 004_*.txt), line for line like plugins/hello-world (Rust): sanity checks
// (Max-Forwards, message size), REGISTER -> save("location"), requests for a
// local user -> lookup("location") or 404, everything else relayed.
//
// Build: `make plugins` (componentize-js, to target/plugins/hello_world_js.wasm),
// built without WASI (-d stdio random clocks http fetch-event): Date.now() is
// the build time and Math.random() the same sequence in every instance.
// The SpiderMonkey engine needs about 33 MiB of linear memory: give the plugin
// `memory_mb = 64` in its manifest entry (the default cap is 32).
//
// Host functions that return result<_, error> throw on error; the thrown
// value's `payload` is the WIT error ({ tag: 'not-found' }, ...).

import { mfProcessMaxfwdHeader, ruriIsMyself } from 'wisp:router/proxy@0.2.0';
import { sendReply, replyError } from 'wisp:router/sl@0.2.0';
import { recordRoute, looseRoute } from 'wisp:router/rr@0.2.0';
import { save, lookup } from 'wisp:router/registrar@0.2.0';
import { tRelay } from 'wisp:router/tm@0.2.0';

// The seed's max_len: requests this long or longer get 513.
let maxLen = 8192;

export function init(params) {
  for (const [key, value] of params) {
    if (key === 'max_len') {
      maxLen = Number(value);
      if (!Number.isInteger(maxLen)) throw `max_len: expected a number, got ${value}`;
    }
  }
}

export function route(msg) {
  // if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
  if (!mfProcessMaxfwdHeader(msg, 10)) return sendReply(msg, 483, 'Too Many Hops');
  // if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
  if (msg.len() >= maxLen) return sendReply(msg, 513, 'Message too big');
  const register = msg.method().tag === 'register';
  // if (!method=="REGISTER") { record_route(); }
  if (!register) recordRoute(msg);
  // if (loose_route()) { append_hf("P-hint: rr-enforced\r\n"); route(1); }
  if (looseRoute(msg)) {
    msg.appendHf('P-hint: rr-enforced');
    return relay(msg);
  }
  // if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); }
  if (!ruriIsMyself(msg)) {
    msg.appendHf('P-hint: outbound');
    return relay(msg);
  }
  // if (method=="REGISTER") { save("location"); exit; }
  if (register) return save(msg, 'location');
  // if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
  try {
    lookup(msg, 'location');
  } catch (e) {
    if (e?.payload?.tag === 'not-found') return sendReply(msg, 404, 'Not Found');
    throw e;
  }
  // append_hf("P-hint: usrloc applied\r\n");
  msg.appendHf('P-hint: usrloc applied');
  return relay(msg);
}

// route[1]: if (!t_relay()) { sl_reply_error(); }
function relay(msg) {
  try {
    tRelay(msg);
  } catch {
    replyError(msg);
  }
}

export function failureRoute(name, msg) {}

export function onreplyRoute(name, msg) {}
