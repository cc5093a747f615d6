//! Seed 003 (SER "Server Operation"), "Connecting to PBX Voicemail Using a
//! Cisco Gateway", as `plugins/voicemail-diversion` in the running router:
//! a call the callee does not take goes to the voicemail number at the
//! gateway, carrying the originally called URI in `CC-Diversion`.

use wisp_e2e::*;

#[test]
fn connecting_to_pbx_voicemail_using_a_cisco_gateway() {
    let gateway = TestUa::new("7781");
    let voicemail = format!("{:?}", gateway.contact());
    let router = Router::start_with(|m| {
        m.set("plugin", "name", "\"voicemail-diversion\"")
            .plugin_file(&plugin_path("voicemail_diversion"))
            .set("params", "voicemail", &voicemail)
    });
    let bob = TestUa::new("bob");
    bob.register(&router);
    let alice = TestUa::new("alice");
    let call = alice.request("INVITE", &router.aor("bob"));
    alice.send_to(router.udp_addr(), &call.build());

    // Bob is busy.
    let (inv, src) = bob.recv_request(RECV).expect("the INVITE reaches bob");
    bob.reply(&inv, src, 486, "Busy Here", "b1");

    // The failure route sends the call to the voicemail at the gateway,
    // naming whom it was for.
    let (vm, vm_src) = gateway
        .recv_request(RECV)
        .expect("the call goes on to the voicemail");
    assert_eq!(
        String::from_utf8_lossy(&vm.request_uri_raw()),
        gateway.contact()
    );
    assert_eq!(
        header_str(&vm, "CC-Diversion").as_deref(),
        Some(router.aor("bob").as_str()),
        "{}",
        text(&vm)
    );
    gateway.reply(&vm, vm_src, 200, "OK", "vm1");
    let (answer, _) = alice
        .recv_answer_for(&call.call_id, RECV)
        .expect("the caller gets the voicemail's answer");
    assert_eq!(answer.status(), Some(200), "{}", text(&answer));
}
