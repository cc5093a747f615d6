//! The network-namespace NAT harness itself (`wisp_e2e::NatNet`): a phone in
//! "home" reaches the root namespace only through the masquerade, the root
//! namespace answers the NAT's mapping and cannot reach the phone's private
//! address, and everything is gone after the drop.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use wisp_e2e::NatNet;

fn recv(sock: &UdpSocket, timeout: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = sock.recv_from(&mut buf).ok()?;
    Some((buf[..n].to_vec(), from))
}

fn link_exists(name: &str) -> bool {
    Path::new(&format!("/sys/class/net/{name}")).exists()
}

#[test]
fn a_phone_at_home_is_masqueraded_and_unreachable_at_its_private_address() {
    let net = NatNet::new();
    let server = UdpSocket::bind((net.public_ip, 0)).expect("bind in the root namespace");
    let phone = net.home_udp(0);
    let phone_addr = phone.local_addr().unwrap();
    assert_eq!(phone_addr.ip(), net.phone_ip);

    phone
        .send_to(b"hello", server.local_addr().unwrap())
        .unwrap();
    let (data, seen) = recv(&server, Duration::from_secs(3)).expect("the packet crosses the NAT");
    assert_eq!(data, b"hello");
    assert_eq!(
        seen.ip(),
        net.nat_public_ip,
        "masqueraded to the NAT's outside address"
    );

    // The mapping leads back to the phone...
    server.send_to(b"back", seen).unwrap();
    let (data, _) = recv(&phone, Duration::from_secs(3)).expect("the answer reaches the phone");
    assert_eq!(data, b"back");

    // ...its private address does not.
    let _ = server.send_to(b"direct", phone_addr);
    assert!(
        recv(&phone, Duration::from_millis(500)).is_none(),
        "192.168.x.2 must not be reachable from the root namespace"
    );
}

#[test]
fn two_nets_coexist_and_are_removed_on_drop() {
    let (a, b) = (NatNet::new(), NatNet::new());
    assert_ne!(a.index, b.index);
    let names = [
        (a.home.clone(), a.nat.clone(), a.root_if.clone()),
        (b.home.clone(), b.nat.clone(), b.root_if.clone()),
    ];
    for (home, nat, root_if) in &names {
        assert!(Path::new(&format!("/run/netns/{home}")).exists());
        assert!(Path::new(&format!("/run/netns/{nat}")).exists());
        assert!(link_exists(root_if));
    }
    a.set_udp_timeout(5);
    drop(a);
    drop(b);
    for (home, nat, root_if) in &names {
        assert!(
            !Path::new(&format!("/run/netns/{home}")).exists(),
            "{home} removed"
        );
        assert!(
            !Path::new(&format!("/run/netns/{nat}")).exists(),
            "{nat} removed"
        );
        assert!(!link_exists(root_if), "{root_if} removed");
    }
}

#[test]
fn a_panicking_test_still_removes_its_namespaces() {
    let names = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let net = NatNet::new();
        *names.lock().unwrap() = Some((net.home.clone(), net.nat.clone()));
        panic!("test failure");
    });
    assert!(result.is_err());
    let (home, nat) = names.lock().unwrap().clone().expect("the net was created");
    assert!(!Path::new(&format!("/run/netns/{home}")).exists());
    assert!(!Path::new(&format!("/run/netns/{nat}")).exists());
}
