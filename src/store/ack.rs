//! Delivery of durable acks from the writer thread to the tasks awaiting them.
//!
//! A commit completes a whole batch of acks at once. A current-thread tokio runtime (tokengate
//! runs pingora's no-steal runtimes: one per worker thread) woken from another thread pays an
//! `eventfd` write and a wake-up of its thread *per task*. So each such runtime that submits
//! gets a relay task: the writer hands it the batch's acks in one message (one remote wake-up)
//! and the relay completes them from inside the runtime (local wake-ups, no system call).
//! Outside a current-thread runtime (a work-stealing runtime, a plain thread) acks are completed
//! directly, as is any ack whose relay has gone with its runtime.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::runtime::{self, Handle, RuntimeFlavor};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// What a submitter is told.
pub type AckResult = Result<(), StoreError>;
type Batch = Vec<(oneshot::Sender<AckResult>, AckResult)>;

/// One submitter awaiting its ack, and the relay that delivers it (if any).
pub struct Waiter {
    reply: oneshot::Sender<AckResult>,
    relay: Option<mpsc::UnboundedSender<Batch>>,
}

/// The relays of one store, one per current-thread runtime that has submitted to it.
#[derive(Default)]
pub struct Relays {
    by_runtime: Mutex<HashMap<runtime::Id, mpsc::UnboundedSender<Batch>>>,
}

impl Relays {
    /// A waiter for `reply`, relayed when the caller runs on a current-thread runtime.
    pub fn waiter(&self, reply: oneshot::Sender<AckResult>) -> Waiter {
        let relay = match Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == RuntimeFlavor::CurrentThread => self.relay_for(&rt),
            _ => None,
        };
        Waiter { reply, relay }
    }

    /// The relay of `rt`, started if there is none yet.
    fn relay_for(&self, rt: &Handle) -> Option<mpsc::UnboundedSender<Batch>> {
        // A poisoned lock only means another submitter panicked: deliver directly then.
        let mut map = self.by_runtime.lock().ok()?;
        let id = rt.id();
        if let Some(tx) = map.get(&id).filter(|tx| !tx.is_closed()) {
            return Some(tx.clone());
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Batch>();
        rt.spawn(async move {
            while let Some(batch) = rx.recv().await {
                deliver(batch);
            }
        });
        // Relays of runtimes that have shut down are closed: forget them.
        map.retain(|_, tx| !tx.is_closed());
        map.insert(id, tx.clone());
        Some(tx)
    }
}

/// Completes `done`: one message per relay for the relayed waiters, the others directly.
pub fn complete(done: Vec<(Waiter, AckResult)>) {
    let mut groups: Vec<(mpsc::UnboundedSender<Batch>, Batch)> = Vec::new();
    for (waiter, result) in done {
        match waiter.relay {
            None => {
                let _ = waiter.reply.send(result);
            }
            Some(relay) => match groups.iter_mut().find(|(tx, _)| tx.same_channel(&relay)) {
                Some((_, batch)) => batch.push((waiter.reply, result)),
                None => groups.push((relay, vec![(waiter.reply, result)])),
            },
        }
    }
    for (relay, batch) in groups {
        if let Err(mpsc::error::SendError(batch)) = relay.send(batch) {
            deliver(batch);
        }
    }
}

/// Hands each ack to its waiter (one that stopped waiting is skipped).
fn deliver(batch: Batch) {
    for (reply, result) in batch {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    #[test]
    fn acks_from_another_thread_arrive_through_the_relay() {
        let relays = Relays::default();
        let rt = current_thread();
        let (waiters, receivers): (Vec<_>, Vec<_>) = rt.block_on(async {
            (0..3)
                .map(|_| {
                    let (tx, rx) = oneshot::channel();
                    (relays.waiter(tx), rx)
                })
                .unzip()
        });
        assert!(waiters.iter().all(|w| w.relay.is_some()));
        assert_eq!(relays.by_runtime.lock().unwrap().len(), 1, "one relay per runtime");
        let results = vec![Ok(()), Err(StoreError::Closed), Ok(())];
        std::thread::spawn(move || complete(waiters.into_iter().zip(results).collect()))
            .join()
            .unwrap();
        let got: Vec<bool> = rt.block_on(async {
            let mut got = Vec::new();
            for rx in receivers {
                got.push(rx.await.unwrap().is_ok());
            }
            got
        });
        assert_eq!(got, [true, false, true]);
    }

    #[test]
    fn a_relay_whose_runtime_is_gone_is_bypassed_and_forgotten() {
        let relays = Relays::default();
        let rt = current_thread();
        let (tx, mut rx) = oneshot::channel();
        let waiter = rt.block_on(async { relays.waiter(tx) });
        drop(rt);
        complete(vec![(waiter, Ok(()))]);
        assert!(rx.try_recv().unwrap().is_ok(), "delivered directly");

        let rt = current_thread();
        let (tx, rx) = oneshot::channel();
        let waiter = rt.block_on(async { relays.waiter(tx) });
        assert_eq!(relays.by_runtime.lock().unwrap().len(), 1, "the closed relay is gone");
        complete(vec![(waiter, Ok(()))]);
        assert!(rt.block_on(rx).unwrap().is_ok(), "a new relay on the new runtime");
    }

    #[test]
    fn outside_a_current_thread_runtime_acks_go_directly() {
        let relays = Relays::default();
        let (tx, _rx) = oneshot::channel();
        assert!(relays.waiter(tx).relay.is_none());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (tx, _rx) = oneshot::channel();
        assert!(rt.block_on(async { relays.waiter(tx) }).relay.is_none());
    }
}
