//! Configuration: the file as written ([`file`]), the validated model ([`model`], with the route
//! table in [`routes`]) and the loader between them ([`load`]).

mod checks;
pub mod client_auth;
pub(crate) mod file;
pub mod load;
pub mod model;
pub mod routes;
mod sections;
pub mod start;
pub mod trusted_proxies;
pub mod upstreams;

pub use load::{load_file, parse_str, ConfigError};
pub use model::Config;

#[cfg(test)]
mod tests;
