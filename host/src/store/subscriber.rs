//! Persistence of subscribers and their groups (Kamailio's `subscriber`
//! and `grp` tables): the rows, and the narrow [`SubscriberStore`] trait a
//! database implements (SQLite today, a shared PostgreSQL later). The
//! in-memory directory the auth host functions read is built from
//! [`SubscriberStore::load_all`] at start and kept in step by writing
//! through these calls (`wisp ctl user|acl`).

use super::StoreError;

/// One subscriber as it is stored. The HA1s are lower-case hex of
/// H(user:domain:password), the realm being the domain; an empty one means
/// "none for this algorithm" (a row imported with only the MD5 `ha1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscriber {
    pub username: String,
    pub domain: String,
    pub ha1: String,
    pub ha1_sha256: String,
    pub ha1_sha512_256: String,
    /// The plain password, only when the manifest asks to store it
    /// (`[subscriber] store_passwords`).
    pub password: Option<String>,
}

/// One membership: `username@domain` is in `group`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StoredGroup {
    pub username: String,
    pub domain: String,
    pub group: String,
}

/// Every row, as loaded at start.
#[derive(Debug, Default, PartialEq)]
pub struct SubscriberRows {
    pub subscribers: Vec<StoredSubscriber>,
    pub groups: Vec<StoredGroup>,
}

/// A database of subscribers and groups. Each call is its own transaction;
/// the `bool` results say whether a row was there to change (the directory
/// turns them into "already exists" / "no such user" for the operator).
pub trait SubscriberStore: Send + 'static {
    /// Every subscriber and membership, but at most `limit + 1`
    /// subscribers: a caller bounded by `limit` learns there are too many
    /// without reading them all.
    fn load_all(&mut self, limit: usize) -> Result<SubscriberRows, StoreError>;
    /// Insert a new subscriber; `false` (and nothing written) if
    /// `username@domain` exists.
    fn insert_subscriber(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError>;
    /// Replace the HA1s and password of an existing subscriber; `false` if
    /// there is none.
    fn set_credentials(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError>;
    /// Delete a subscriber and its memberships (a user added again later
    /// does not inherit old rights); `false` if there was none.
    fn remove_subscriber(&mut self, username: &str, domain: &str) -> Result<bool, StoreError>;
    /// Add a membership; `false` if it was there already.
    fn grant(&mut self, g: &StoredGroup) -> Result<bool, StoreError>;
    /// Remove a membership; `false` if there was none.
    fn revoke(&mut self, g: &StoredGroup) -> Result<bool, StoreError>;
}
