//! The shared vocabulary at the bottom of the crate: token ids and states, formats, grant types,
//! token keys, scopes and audiences, request paths, and the renewal decision. It depends on nothing else
//! in the crate; every other layer speaks it.

pub mod audience;
pub mod format;
pub mod grant_type;
pub mod ids;
pub mod key;
pub mod path;
pub mod policy;
