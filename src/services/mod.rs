//! Background services run by the pingora server next to the proxy.

pub mod health;
pub mod ops_http;
pub mod reload;
pub mod sweeper;
