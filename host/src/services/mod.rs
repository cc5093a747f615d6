//! Services plugins call by name: the registrar (`save`, `lookup`) over the
//! user location store.

pub mod registrar;
pub mod usrloc;
