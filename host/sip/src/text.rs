//! Numbers and addresses written into header text.
//!
//! A relayed request gets a Via with our address and a branch id, a
//! `received`/`rport` on the sender's Via and a Record-Route; through
//! `format!` each IPv4 address alone costs some 2,500 instructions
//! (`Ipv4Addr`'s `Display` formats four `u8`s through `fmt::write`). These
//! write the same text directly: integers with `itoa`, IPv4 octet by octet.
//! IPv6 addresses keep std's formatting (its zero-run compression is not
//! worth repeating here).

use std::fmt::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Append the decimal form of `n`.
#[inline]
pub fn push_int<I: itoa::Integer>(out: &mut String, n: I) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Append `n` in lower-case hexadecimal, without leading zeros (as `{:x}`).
pub fn push_hex(out: &mut String, n: u64) {
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|b| *b as char));
}

/// Append `n` as exactly eight hexadecimal digits (as `{:08x}`).
pub fn push_hex8(out: &mut String, n: u32) {
    for shift in (0..8).rev() {
        out.push(b"0123456789abcdef"[((n >> (shift * 4)) & 0xf) as usize] as char);
    }
}

/// Write `ip` as dotted decimal.
#[inline]
pub fn write_ipv4<W: Write + ?Sized>(out: &mut W, ip: Ipv4Addr) -> fmt::Result {
    let mut buf = [0u8; 15];
    let mut len = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[len] = b'.';
            len += 1;
        }
        let mut digits = itoa::Buffer::new();
        let d = digits.format(octet).as_bytes();
        buf[len..len + d.len()].copy_from_slice(d);
        len += d.len();
    }
    // Digits and dots only.
    out.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
}

/// Append `ip` as it appears in a `received` parameter: dotted decimal, or
/// IPv6 without brackets.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    // Writing into a String does not fail.
    let _ = match ip {
        IpAddr::V4(v4) => write_ipv4(out, v4),
        IpAddr::V6(v6) => write!(out, "{v6}"),
    };
}

/// Append `addr` as a URI or Via `host:port` writes it: `1.2.3.4:5060`,
/// `[::1]:5060`.
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let _ = write_ipv4(out, v4);
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "[{v6}]");
        }
    }
    out.push(':');
    push_int(out, addr.port());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn addresses_and_numbers_read_as_std_writes_them(
            a: [u8; 4], v6: [u16; 8], port: u16, n: u64, m: u32
        ) {
            let v4 = SocketAddr::from((Ipv4Addr::from(a), port));
            let v6 = SocketAddr::from((std::net::Ipv6Addr::from(v6), port));
            for addr in [v4, v6] {
                let mut s = String::new();
                push_socket_addr(&mut s, addr);
                prop_assert_eq!(&s, &addr.to_string());
                let mut s = String::new();
                push_ip(&mut s, addr.ip());
                prop_assert_eq!(s, addr.ip().to_string());
            }
            let mut s = String::new();
            push_hex(&mut s, n);
            push_hex8(&mut s, m);
            push_int(&mut s, port);
            prop_assert_eq!(s, format!("{n:x}{m:08x}{port}"));
        }
    }
}
