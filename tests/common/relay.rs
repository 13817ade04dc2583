//! A TCP relay between one gateway and PostgreSQL that a test cuts and restores, to take the
//! database away from that node without stopping the server the other nodes and tests share.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the database goes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Relayed connections are closed; new ones are accepted and never answered.
    BlackHole,
    /// Relayed connections are closed; new ones are refused (nothing listens on the port).
    Refuse,
    /// Nothing flows any more on the relayed connections, which stay open (a network
    /// partition); new ones are accepted and never answered.
    Freeze,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Relaying,
    Cut(Cut),
}

struct Shared {
    mode: Mode,
    /// Bumped when relayed connections are closed: pumps of an older generation stop.
    generation: u64,
    /// `None` while connections are refused.
    listener: Option<TcpListener>,
    /// Both ends of every relayed connection, to close them at a cut.
    open: Vec<TcpStream>,
    /// Connections accepted while cut, held open and unanswered.
    held: Vec<TcpStream>,
    /// Connections relayed so far.
    relayed: u64,
}

/// A relay on `127.0.0.1:<port>` to a PostgreSQL server; stops with this value.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

fn bind(addr: &str) -> TcpListener {
    let l = TcpListener::bind(addr).expect("bind relay");
    l.set_nonblocking(true).expect("nonblocking relay");
    l
}

impl Relay {
    pub fn start(target: SocketAddr) -> Relay {
        let listener = bind("127.0.0.1:0");
        let addr = listener.local_addr().expect("relay addr");
        let shared = Arc::new(Mutex::new(Shared {
            mode: Mode::Relaying,
            generation: 0,
            listener: Some(listener),
            open: Vec::new(),
            held: Vec::new(),
            relayed: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || accept_loop(target, &s, &st));
        Relay { addr, shared, stop }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the database away from the gateway behind this relay.
    pub fn cut(&self, how: Cut) {
        let mut s = self.lock();
        s.mode = Mode::Cut(how);
        if how != Cut::Freeze {
            s.generation += 1;
            for c in s.open.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        if how == Cut::Refuse {
            s.listener = None;
        }
    }

    /// Relays again; the connections held unanswered while cut are closed.
    pub fn restore(&self) {
        let mut s = self.lock();
        if s.listener.is_none() {
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match TcpListener::bind(self.addr) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() > deadline => panic!("rebind relay {}: {e}", self.addr),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            };
            listener.set_nonblocking(true).expect("nonblocking relay");
            s.listener = Some(listener);
        }
        for c in s.held.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        s.mode = Mode::Relaying;
    }

    /// Connections relayed to the server so far.
    pub fn relayed(&self) -> u64 {
        self.lock().relayed
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut(Cut::Refuse);
        for c in self.lock().held.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(target: SocketAddr, shared: &Arc<Mutex<Shared>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let accepted = match &lock(shared).listener {
            Some(l) => l.accept().map(|(c, _)| c),
            None => Err(ErrorKind::WouldBlock.into()),
        };
        let Ok(client) = accepted else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let _ = client.set_nonblocking(false);
        if lock(shared).mode != Mode::Relaying {
            lock(shared).held.push(client);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            continue; // the client sees its connection closed
        };
        let mut s = lock(shared);
        if s.mode != Mode::Relaying {
            s.held.push(client);
            continue;
        }
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        s.open.push(c2);
        s.open.push(s2);
        s.relayed += 1;
        let generation = s.generation;
        drop(s);
        let (c3, s3) = (client.try_clone(), server.try_clone());
        let up = shared.clone();
        std::thread::spawn(move || pump(client, server, &up, generation));
        if let (Ok(c3), Ok(s3)) = (c3, s3) {
            let down = shared.clone();
            std::thread::spawn(move || pump(s3, c3, &down, generation));
        }
    }
}

/// Whether bytes may flow on a connection of `generation` now: `None` once it is closed.
fn may_flow(shared: &Mutex<Shared>, generation: u64) -> Option<bool> {
    let s = lock(shared);
    if s.generation != generation {
        return None;
    }
    Some(s.mode != Mode::Cut(Cut::Freeze))
}

/// Copies `from` to `to` until either closes or the connection's generation is cut; holds the
/// bytes while frozen.
fn pump(mut from: TcpStream, mut to: TcpStream, shared: &Mutex<Shared>, generation: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 * 1024];
    'relay: loop {
        match may_flow(shared, generation) {
            None => break,
            Some(false) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Some(true) => {}
        }
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        };
        // Frozen between the check and the read: hold the bytes until the freeze ends.
        loop {
            match may_flow(shared, generation) {
                None => break 'relay,
                Some(false) => std::thread::sleep(Duration::from_millis(10)),
                Some(true) => break,
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
