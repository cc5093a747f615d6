//! Small helpers every layer uses.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, also when a thread panicked while holding it. Every mutex of
/// the router guards state that stays consistent between statements (a
/// panic is a bug, never a half-done update we rely on), so the one way to
/// handle poisoning is to carry on with the data rather than take down
/// every later caller.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
