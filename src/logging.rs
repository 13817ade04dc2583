//! The process's logger: `env_logger` (`RUST_LOG`, by default `tokengate=info,warn`) behind two
//! guards.
//!
//! - pingora's own debug and trace lines never print, whatever `RUST_LOG` says: they dump request
//!   heads and buffers as received (a malformed head with its `Authorization` header, say), and a
//!   log is no place for credentials. pingora's info, warnings and errors print as configured.
//! - pingora's error lines about a client that hung up or stalled mid-request ("Fail to proxy:
//!   Downstream ...") are a client's doing, not the gateway's: a client opening connections and
//!   closing them half-way could otherwise fill disks and drown real errors. They are logged at
//!   debug under the target `tokengate::client` (`RUST_LOG=tokengate::client=debug` shows them).

use log::{Level, Log, Metadata, Record};

/// Where demoted client-side failures are logged.
const CLIENT_TARGET: &str = "tokengate::client";

/// The gateway's logger.
struct Guarded {
    inner: env_logger::Logger,
}

/// Whether a record from `target` at `level` may print at all.
fn allowed(target: &str, level: Level) -> bool {
    level <= Level::Info || !target.starts_with("pingora")
}

/// Whether a record is pingora's error line about a failure on the client's side.
fn is_client_failure(record: &Record<'_>) -> bool {
    record.target().starts_with("pingora_proxy")
        && record.level() <= Level::Warn
        && record.args().to_string().starts_with("Fail to proxy: Downstream ")
}

impl Log for Guarded {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        allowed(metadata.target(), metadata.level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !allowed(record.target(), record.level()) {
            return;
        }
        if is_client_failure(record) {
            let demoted = Record::builder()
                .args(*record.args())
                .level(Level::Debug)
                .target(CLIENT_TARGET)
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build();
            self.inner.log(&demoted);
            return;
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

/// Installs the logger; call once, first thing in `main`.
pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("tokengate=info,warn")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Guarded { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingora_debug_and_trace_never_print() {
        assert!(!allowed("pingora_core::protocols::http::v1::server", Level::Debug));
        assert!(!allowed("pingora_proxy", Level::Trace));
        assert!(allowed("pingora_proxy", Level::Error));
        assert!(allowed("pingora_core::server", Level::Info));
        assert!(allowed("tokengate::gateway", Level::Debug));
    }

    #[test]
    fn client_hangups_are_recognised() {
        let client =
            format_args!("Fail to proxy: Downstream ConnectionClosed context: x, downstream session type: HTTP/1");
        let rec = Record::builder()
            .args(client)
            .level(Level::Error)
            .target("pingora_proxy")
            .build();
        assert!(is_client_failure(&rec));
        let upstream = format_args!("Fail to proxy: Upstream ConnectRefused, status: 502");
        let rec = Record::builder()
            .args(upstream)
            .level(Level::Error)
            .target("pingora_proxy")
            .build();
        assert!(!is_client_failure(&rec));
    }
}
