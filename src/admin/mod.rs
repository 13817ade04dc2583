//! The admin API (`server.admin_listen`, `[admin]`): operators list the live tokens of a client,
//! a user, a key or a token id, and revoke them in bulk ([`api`], served by [`http`]); and the
//! `tokengate admin` command that drives it ([`cli`]).

pub mod api;
pub mod cli;
pub mod http;
