//! Services plugins call by name: the registrar (`save`, `lookup`) over the
//! user location store, and `exec` of the programs a manifest grants.

pub mod exec;
pub mod registrar;
pub mod usrloc;
