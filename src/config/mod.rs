//! Configuration: the file as written ([`file`]), the validated model ([`model`]) and the loader
//! between them ([`load`]).

pub mod file;
pub mod load;
pub mod model;
pub mod upstreams;

pub use load::{load_file, parse_str, ConfigError};
pub use model::Config;

#[cfg(test)]
mod tests;
