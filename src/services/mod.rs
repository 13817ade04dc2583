//! Background services run by the pingora server next to the proxy.

pub mod reload;
pub mod sweeper;
