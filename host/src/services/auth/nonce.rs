//! Stateless nonces and the bounded record that refuses their replay.
//!
//! A nonce is 64 hex digits: the second it expires (8 bytes), an id (8
//! bytes) and the first 16 bytes of an HMAC-SHA-256 over both, keyed by
//! the manifest's secret. Any router with the secret checks it without
//! having stored it (seed 003, "Reliability"). Replays are refused by
//! [`ReplayGuard`]: per nonce id, the highest nonce count seen, in a table
//! of fixed size that an attacker cannot grow.
//!
//! Ids count up from a random start, so the nonces one router issues in a
//! row take the guard's slots in turn: a slot is only wanted by a newer
//! nonce after as many others were issued as there are slots, and the
//! guard holds every used nonce of a lifetime as long as fewer nonces than
//! slots are issued per lifetime. (Random ids would collide in a table
//! long before it is full.) The MAC, not the id, makes a nonce unforgeable;
//! routers sharing a secret start their counts at unrelated points.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::util::lock;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC a nonce carries.
const MAC_LEN: usize = 16;
/// Bytes of a nonce before hex: expiry, id, MAC.
const RAW_LEN: usize = 8 + 8 + MAC_LEN;

/// Makes and checks nonces with one secret.
pub struct NonceKey {
    secret: Vec<u8>,
    lifetime: Duration,
    /// The id of the next nonce.
    next_id: AtomicU64,
}

/// A nonce that checked out: its id and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nonce {
    pub id: u64,
    /// Seconds since the Unix epoch.
    pub expires: u64,
}

/// Why a nonce is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceError {
    /// Ours, but past its lifetime: challenge again with `stale=true`.
    Stale,
    /// Not made with this secret, or not a nonce at all.
    Forged,
}

impl NonceKey {
    /// Nonces keyed by `secret`, valid for `lifetime` after they are made.
    pub fn new(secret: &[u8], lifetime: Duration) -> NonceKey {
        NonceKey {
            secret: secret.to_vec(),
            lifetime,
            next_id: AtomicU64::new(rand::random()),
        }
    }

    fn mac(&self, expires: u64, id: u64) -> [u8; MAC_LEN] {
        // Any key length is valid for HMAC.
        let mut mac = match HmacSha256::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => unreachable_hmac(),
        };
        mac.update(&expires.to_be_bytes());
        mac.update(&id.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A fresh nonce for a challenge made at `now`.
    pub fn issue(&self, now: SystemTime) -> String {
        let expires = unix_secs(now) + self.lifetime.as_secs();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&expires.to_be_bytes());
        raw[8..16].copy_from_slice(&id.to_be_bytes());
        raw[16..].copy_from_slice(&self.mac(expires, id));
        super::digest::to_hex(&raw)
    }

    /// Check `nonce` at `now`: made with this secret (compared in constant
    /// time) and not expired.
    pub fn check(&self, nonce: &str, now: SystemTime) -> Result<Nonce, NonceError> {
        let raw = from_hex(nonce).ok_or(NonceError::Forged)?;
        let expires = u64::from_be_bytes(raw[..8].try_into().map_err(|_| NonceError::Forged)?);
        let id = u64::from_be_bytes(raw[8..16].try_into().map_err(|_| NonceError::Forged)?);
        if !bool::from(self.mac(expires, id).ct_eq(&raw[16..])) {
            return Err(NonceError::Forged);
        }
        if unix_secs(now) >= expires {
            return Err(NonceError::Stale);
        }
        Ok(Nonce { id, expires })
    }
}

/// `Hmac::new_from_slice` accepts keys of any length; this is never reached.
#[cold]
fn unreachable_hmac() -> ! {
    unreachable!("HMAC takes keys of any length")
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_hex(s: &str) -> Option<[u8; RAW_LEN]> {
    let b = s.as_bytes();
    if b.len() != RAW_LEN * 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; RAW_LEN];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Why a use of a valid nonce is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// This nonce count (or, without qop, this nonce) was used already.
    Replayed,
    /// The record has no room for this nonce now (another live nonce holds
    /// its slot): challenge again, with `stale=true`.
    NoRoom,
}

/// The highest nonce count used with each live nonce, in a fixed number of
/// slots: memory does not grow with the nonces an attacker presents.
pub struct ReplayGuard {
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    id: u64,
    expires: u64,
    nc: u32,
}

impl ReplayGuard {
    /// A record of `slots` nonces at most.
    pub fn new(slots: usize) -> ReplayGuard {
        ReplayGuard {
            slots: Mutex::new(vec![Slot::default(); slots.max(1)]),
        }
    }

    /// Record a use of `nonce` with nonce count `nc` (1 for credentials
    /// without qop, so a nonce without qop is good once) at `now`. A count
    /// must exceed every count used before with the same nonce.
    pub fn use_nonce(&self, nonce: Nonce, nc: u32, now: SystemTime) -> Result<(), Replay> {
        let mut slots = lock(&self.slots);
        let len = slots.len();
        let slot = &mut slots[(nonce.id % len as u64) as usize];
        let live = slot.expires > unix_secs(now);
        if slot.id == nonce.id && live {
            if nc <= slot.nc {
                return Err(Replay::Replayed);
            }
            slot.nc = nc;
            return Ok(());
        }
        if live {
            return Err(Replay::NoRoom);
        }
        *slot = Slot {
            id: nonce.id,
            expires: nonce.expires,
            nc,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_nonce_checks_out_until_it_expires_then_is_stale() {
        let key = NonceKey::new(b"secret", Duration::from_secs(300));
        let n = key.issue(at(1_000));
        assert_eq!(n.len(), 64);
        let checked = key.check(&n, at(1_299)).expect("valid");
        assert_eq!(checked.expires, 1_300);
        assert_eq!(key.check(&n, at(1_300)), Err(NonceError::Stale));
        assert_ne!(key.issue(at(1_000)), n, "each nonce has its own id");
    }

    #[test]
    fn routers_sharing_the_secret_accept_each_others_nonces_others_do_not() {
        let a = NonceKey::new(b"shared", Duration::from_secs(60));
        let b = NonceKey::new(b"shared", Duration::from_secs(60));
        let other = NonceKey::new(b"another", Duration::from_secs(60));
        let n = a.issue(at(10));
        assert!(b.check(&n, at(20)).is_ok());
        assert_eq!(other.check(&n, at(20)), Err(NonceError::Forged));
    }

    #[test]
    fn a_changed_expiry_or_junk_is_forged() {
        let key = NonceKey::new(b"k", Duration::from_secs(60));
        let n = key.issue(at(10));
        // Push the expiry one second later without the MAC following.
        let mut raw = from_hex(&n).expect("hex");
        raw[7] = raw[7].wrapping_add(1);
        let tampered = super::super::digest::to_hex(&raw);
        assert_eq!(key.check(&tampered, at(20)), Err(NonceError::Forged));
        for junk in [
            "",
            "zz",
            &n[..62],
            &format!("{n}00"),
            &n.replace(&n[..2], "g0"),
        ] {
            assert_eq!(key.check(junk, at(20)), Err(NonceError::Forged), "{junk:?}");
        }
    }

    #[test]
    fn a_guard_with_n_slots_holds_the_last_n_nonces_one_key_issued() {
        let key = NonceKey::new(b"k", Duration::from_secs(300));
        let guard = ReplayGuard::new(64);
        let nonces: Vec<Nonce> = (0..64)
            .map(|_| key.check(&key.issue(at(0)), at(1)).expect("valid"))
            .collect();
        for n in &nonces {
            assert_eq!(guard.use_nonce(*n, 1, at(1)), Ok(()), "no collision");
        }
        for n in &nonces {
            assert_eq!(guard.use_nonce(*n, 1, at(2)), Err(Replay::Replayed));
        }
        // The 65th wants the first one's slot while it lives.
        let next = key.check(&key.issue(at(0)), at(1)).expect("valid");
        assert_eq!(guard.use_nonce(next, 1, at(3)), Err(Replay::NoRoom));
    }

    #[test]
    fn rfc7616_3_3_nonce_counts_must_grow_and_the_record_is_bounded() {
        let guard = ReplayGuard::new(4);
        let n = Nonce {
            id: 8,
            expires: 100,
        };
        assert_eq!(guard.use_nonce(n, 1, at(50)), Ok(()));
        assert_eq!(guard.use_nonce(n, 1, at(51)), Err(Replay::Replayed));
        assert_eq!(guard.use_nonce(n, 2, at(52)), Ok(()));
        assert_eq!(guard.use_nonce(n, 2, at(52)), Err(Replay::Replayed));
        // Another live nonce in the same slot: no room, not an eviction.
        let rival = Nonce {
            id: 12,
            expires: 100,
        };
        assert_eq!(guard.use_nonce(rival, 1, at(53)), Err(Replay::NoRoom));
        // Once the first has expired its slot is free again.
        assert_eq!(guard.use_nonce(rival, 1, at(100)), Ok(()));
        // Thousands of nonces never grow it past its four slots.
        for id in 0..10_000u64 {
            let _ = guard.use_nonce(
                Nonce {
                    id,
                    expires: 10_000,
                },
                1,
                at(200),
            );
        }
        assert_eq!(lock(&guard.slots).len(), 4);
    }
}
