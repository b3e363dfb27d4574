//! The rendezvous server: introduces peers in a room to each other and answers STUN Binding
//! Requests on the same port. A sans-IO core (`Server::handle`) under a thin tokio loop
//! (`run`). It never sees chat content or keys: peers speak to each other directly.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::time::sleep_until;

use crate::consts::{
    MAX_DATAGRAM_BYTES, MAX_NAME_CHARS, MAX_PRIVATE_ENDPOINTS, MAX_REGISTRATIONS, MAX_ROOM_CHARS,
    MAX_ROOM_MEMBERS, RECV_BUFFER_BYTES, REGISTRATION_TTL,
};
use crate::proto::Transmit;
use crate::proto::stun::{self, Stun};
use crate::proto::wire::{self, Class, FromServer, ToServer};

/// Datagrams the server dropped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerDrops {
    /// Larger than `MAX_DATAGRAM_BYTES`.
    pub oversized: u64,
    /// Not STUN and not a register request we could read.
    pub malformed: u64,
    /// Readable, but refused (bad room or name, full room, full server).
    pub refused: u64,
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    public: SocketAddr,
    private: Vec<SocketAddr>,
    expires: Instant,
}

impl Member {
    fn introduction(&self) -> FromServer {
        FromServer::Peer {
            name: self.name.clone(),
            public: self.public,
            private: self.private.clone(),
        }
    }
}

/// The server's whole state.
#[derive(Debug, Default)]
pub struct Server {
    rooms: HashMap<String, Vec<Member>>,
    registrations: usize,
    drops: ServerDrops,
    registered_total: u64,
    stun_answered: u64,
}

impl Server {
    /// An empty server.
    pub fn new() -> Self {
        Self::default()
    }

    /// Drop counters so far.
    pub fn drops(&self) -> ServerDrops {
        self.drops
    }

    /// Live registrations across all rooms.
    pub fn registrations(&self) -> usize {
        self.registrations
    }

    /// Feeds one datagram; returns what to send in answer.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Vec<Transmit> {
        if bytes.len() > MAX_DATAGRAM_BYTES {
            self.drops.oversized += 1;
            return Vec::new();
        }
        match wire::classify(bytes) {
            Class::Stun => match stun::parse(bytes) {
                Some(Stun::BindingRequest { txid }) => {
                    self.stun_answered += 1;
                    stun::binding_success(txid, from)
                        .map(|payload| Transmit { to: from, payload })
                        .into_iter()
                        .collect()
                }
                _ => {
                    self.drops.malformed += 1;
                    Vec::new()
                }
            },
            Class::Control => match serde_json::from_slice::<ToServer>(bytes) {
                Ok(ToServer::Register {
                    room,
                    name,
                    private,
                }) => {
                    self.expire(now);
                    self.register(now, from, room, name, private)
                }
                Err(_) => {
                    self.drops.malformed += 1;
                    Vec::new()
                }
            },
            Class::Token(_) | Class::Unknown => {
                self.drops.malformed += 1;
                Vec::new()
            }
        }
    }

    /// Removes expired registrations.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// When the next registration expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rooms.values().flatten().map(|m| m.expires).min()
    }

    fn expire(&mut self, now: Instant) {
        let mut removed = 0;
        self.rooms.retain(|_, members| {
            let before = members.len();
            members.retain(|m| m.expires > now);
            removed += before - members.len();
            !members.is_empty()
        });
        self.registrations -= removed;
    }

    fn refuse(&mut self, to: SocketAddr, reason: String) -> Vec<Transmit> {
        self.drops.refused += 1;
        encode(to, &FromServer::Refused { reason })
            .into_iter()
            .collect()
    }

    fn register(
        &mut self,
        now: Instant,
        from: SocketAddr,
        room: String,
        name: String,
        mut private: Vec<SocketAddr>,
    ) -> Vec<Transmit> {
        if room.is_empty() || room.chars().count() > MAX_ROOM_CHARS {
            return self.refuse(
                from,
                format!("room names are 1 to {MAX_ROOM_CHARS} characters"),
            );
        }
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return self.refuse(from, format!("names are 1 to {MAX_NAME_CHARS} characters"));
        }
        private.truncate(MAX_PRIVATE_ENDPOINTS);
        let expires = now + REGISTRATION_TTL;
        let members = self.rooms.get(&room).map_or(0, Vec::len);
        let existing = self
            .rooms
            .get(&room)
            .and_then(|ms| ms.iter().position(|m| m.name == name));
        if existing.is_none() {
            if members >= MAX_ROOM_MEMBERS {
                return self.refuse(from, format!("room is full ({MAX_ROOM_MEMBERS} members)"));
            }
            if self.registrations >= MAX_REGISTRATIONS {
                return self.refuse(from, "server is full; try again later".to_owned());
            }
            self.registrations += 1;
        }
        self.registered_total += 1;
        let members = self.rooms.entry(room).or_default();
        let me = Member {
            name,
            public: from,
            private,
            expires,
        };
        // Others hear about a member when it is new or its endpoints changed (a restart).
        let changed = match existing {
            Some(i) => {
                let old = &members[i];
                let changed = old.public != me.public || old.private != me.private;
                members[i] = me.clone();
                changed
            }
            None => {
                members.push(me.clone());
                true
            }
        };
        let mut out: Vec<Transmit> = Vec::new();
        out.extend(encode(
            from,
            &FromServer::Registered {
                public: from,
                ttl_secs: REGISTRATION_TTL.as_secs(),
            },
        ));
        for other in members.iter().filter(|m| m.name != me.name) {
            out.extend(encode(from, &other.introduction()));
            if changed {
                out.extend(encode(other.public, &me.introduction()));
            }
        }
        out
    }
}

fn encode(to: SocketAddr, message: &FromServer) -> Option<Transmit> {
    serde_json::to_vec(message)
        .ok()
        .map(|payload| Transmit { to, payload })
}

/// Serves on `socket` until `shutdown` completes.
pub async fn run(socket: UdpSocket, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let mut server = Server::new();
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    tokio::pin!(shutdown);
    let mut last_drops = ServerDrops::default();
    loop {
        let deadline = server
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + REGISTRATION_TTL);
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = sleep_until(deadline.into()) => server.handle_timeout(Instant::now()),
            received = socket.recv_from(&mut buf) => {
                let (len, from) = match received {
                    Ok(r) => r,
                    // ICMP errors from earlier sends surface here on some systems; not fatal.
                    Err(error) => {
                        tracing::debug!(%error, "recv_from failed");
                        continue;
                    }
                };
                for transmit in server.handle(Instant::now(), from, &buf[..len]) {
                    if let Err(error) = socket.send_to(&transmit.payload, transmit.to).await {
                        tracing::debug!(%error, to = %transmit.to, "send_to failed");
                    }
                }
                if server.drops != last_drops {
                    last_drops = server.drops;
                    tracing::info!(drops = ?last_drops, "dropped datagrams");
                }
                tracing::trace!(registrations = server.registrations, "handled {len} bytes from {from}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn register(room: &str, name: &str) -> Vec<u8> {
        serde_json::to_vec(&ToServer::Register {
            room: room.into(),
            name: name.into(),
            private: vec![addr("192.0.2.10:5000")],
        })
        .unwrap()
    }

    fn decode(t: &Transmit) -> FromServer {
        serde_json::from_slice(&t.payload).unwrap()
    }

    #[test]
    fn second_member_triggers_mutual_introduction() {
        let mut s = Server::new();
        let now = Instant::now();
        let (a, b) = (addr("198.51.100.1:1000"), addr("198.51.100.2:2000"));
        let out = s.handle(now, a, &register("r", "alice"));
        assert_eq!(out.len(), 1);
        assert_eq!(
            decode(&out[0]),
            FromServer::Registered {
                public: a,
                ttl_secs: 60
            }
        );
        let out = s.handle(now, b, &register("r", "bob"));
        let to_b: Vec<_> = out.iter().filter(|t| t.to == b).map(decode).collect();
        let to_a: Vec<_> = out.iter().filter(|t| t.to == a).map(decode).collect();
        assert_eq!(to_b.len(), 2);
        assert!(
            matches!(&to_b[1], FromServer::Peer { name, public, .. } if name == "alice" && *public == a)
        );
        assert_eq!(to_a.len(), 1);
        assert!(
            matches!(&to_a[0], FromServer::Peer { name, public, private }
            if name == "bob" && *public == b && private == &vec![addr("192.0.2.10:5000")])
        );
        // A refresh from the same endpoint tells the others nothing new.
        let out = s.handle(now, b, &register("r", "bob"));
        assert!(out.iter().all(|t| t.to == b));
        // A restart (new port) re-introduces bob to alice.
        let b2 = addr("198.51.100.2:2001");
        let out = s.handle(now, b2, &register("r", "bob"));
        assert!(
            out.iter().any(|t| t.to == a
                && matches!(decode(t), FromServer::Peer { public, .. } if public == b2))
        );
        assert_eq!(s.registrations(), 2);
    }

    #[test]
    fn registrations_expire_without_refresh() {
        let mut s = Server::new();
        let now = Instant::now();
        s.handle(now, addr("198.51.100.1:1"), &register("r", "a"));
        assert_eq!(s.poll_timeout(), Some(now + REGISTRATION_TTL));
        s.handle_timeout(now + REGISTRATION_TTL - std::time::Duration::from_secs(1));
        assert_eq!(s.registrations(), 1);
        s.handle_timeout(now + REGISTRATION_TTL);
        assert_eq!(s.registrations(), 0);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn answers_stun_binding_requests() {
        let mut s = Server::new();
        let from = addr("198.51.100.9:4242");
        let out = s.handle(
            Instant::now(),
            from,
            &stun::binding_request([9; 12]).unwrap(),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            stun::parse(&out[0].payload),
            Some(Stun::BindingSuccess {
                txid: [9; 12],
                mapped: from
            })
        );
    }

    #[test]
    fn garbage_and_bad_registrations_are_counted_not_fatal() {
        let mut s = Server::new();
        let now = Instant::now();
        let from = addr("198.51.100.1:1");
        assert!(s.handle(now, from, &[0u8; 1300]).is_empty());
        assert!(s.handle(now, from, b"{not json").is_empty());
        assert!(s.handle(now, from, b"{\"op\":\"register\"}").is_empty());
        assert!(s.handle(now, from, b"gAAAAAxyz").is_empty());
        assert!(s.handle(now, from, &[]).is_empty());
        let out = s.handle(now, from, &register("", "a"));
        assert!(matches!(decode(&out[0]), FromServer::Refused { .. }));
        let out = s.handle(now, from, &register("r", &"n".repeat(40)));
        assert!(matches!(decode(&out[0]), FromServer::Refused { .. }));
        assert_eq!(
            s.drops(),
            ServerDrops {
                oversized: 1,
                malformed: 4,
                refused: 2
            }
        );
        assert_eq!(s.registrations(), 0);
    }

    #[test]
    fn full_room_is_refused() {
        let mut s = Server::new();
        let now = Instant::now();
        for i in 0..MAX_ROOM_MEMBERS {
            s.handle(
                now,
                addr(&format!("198.51.100.1:{}", 1000 + i)),
                &register("r", &format!("p{i}")),
            );
        }
        let out = s.handle(now, addr("198.51.100.2:1"), &register("r", "late"));
        assert!(
            out.iter()
                .any(|t| matches!(decode(t), FromServer::Refused { .. }))
        );
        assert_eq!(s.registrations(), MAX_ROOM_MEMBERS);
    }
}
