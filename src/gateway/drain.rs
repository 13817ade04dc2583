//! The end of the proxy's service, once its listeners stopped accepting: a graceful stop
//! (SIGTERM) or a graceful upgrade (SIGQUIT, the listening sockets handed to a new process).
//!
//! pingora then at once wakes every HTTP/1.1 connection that waits idle for its next request
//! and closes it (the proxy's `http_cleanup`). A client may be sending that next request at that
//! very moment: it gets the connection closed under it, a failed request. So for
//! `server.grace_period_secs` the idle connections are left open instead: a connection's next
//! request is still read and answered, and that answer carries `Connection: close` (pingora
//! turns keep-alive off for every request read once it shuts down), so its client opens a new
//! connection, which waits in the listener's backlog for the new process (an upgrade). Only the
//! connections still open after that are closed when idle; requests under way then get
//! `server.shutdown_timeout_secs` more, after which pingora stops the runtime.
//!
//! Once no connection is left the process exits, without waiting for those bounds: in an
//! upgrade the new process waits for the data folder's lock, released at exit, before it loads
//! the store, and every change this process acknowledged was durable before its answer left.

use std::time::Duration;

use tokio::time::Instant;

use crate::state::AppState;

/// How often the count of open connections is read while draining.
const POLL: Duration = Duration::from_millis(5);

/// How long the count must stay at zero to count as drained: a connection accepted just before
/// the listener stopped is counted only once its TLS handshake is over (pingora has no hook
/// between `accept` and the end of the handshake).
const SETTLE: Duration = Duration::from_millis(100);

/// Waits for the proxy's client connections to close, then ends the process.
pub struct Drain {
    /// Called once drained (ends the process).
    on_drained: fn(),
}

impl Drain {
    pub fn new(on_drained: fn()) -> Drain {
        Drain { on_drained }
    }

    /// Waits until no client connection is open on the proxy listener, or until `deadline`;
    /// returns whether none is.
    async fn closed(state: &AppState, deadline: Option<Instant>) -> bool {
        loop {
            while state.connections.open() > 0 {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                tokio::time::sleep(POLL).await;
            }
            tokio::time::sleep(SETTLE).await;
            if state.connections.open() == 0 {
                return true;
            }
        }
    }

    /// Lets the open connections end with an answer for the grace period; returns when the
    /// idle ones that are left may be closed. Once every connection is closed, ends the process
    /// instead of returning.
    pub async fn until_idle_may_close(&self, state: &AppState) {
        let grace = Duration::from_secs(state.live_guard().config.start.process.grace_period_secs);
        let open = state.connections.open();
        log::info!("shutting down: {open} client connection(s) open get {grace:?} to end with an answer");
        // No deadline for a grace period past the clock's range.
        if Self::closed(state, Instant::now().checked_add(grace)).await {
            self.finish();
        }
        log::info!(
            "shutting down: closing idle client connections ({} open)",
            state.connections.open()
        );
    }

    /// Waits until the connections left are closed (requests under way end, or pingora stops
    /// the runtime at the end of the shutdown timeout), then ends the process.
    pub async fn until_closed(&self, state: &AppState) {
        if Self::closed(state, None).await {
            self.finish();
        }
    }

    fn finish(&self) {
        log::info!(
            "shut down: every client connection is closed and every answered change is stored; exiting (a gateway started with --upgrade takes over the data folder)"
        );
        (self.on_drained)();
    }
}
