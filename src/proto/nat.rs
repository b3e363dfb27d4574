//! RFC 5780 NAT behaviour discovery as a sans-IO state machine. Two local sockets: mapping tests
//! (RFC 5780 §4.3) run first on one, filtering tests (§4.4) on the other, as §4.5 advises — a
//! filtering probe the NAT drops still leaves conntrack state that would change the next
//! mapping, which is why RFC 3489 detectors call a Linux masquerade NAT "symmetric". The caller
//! owns the sockets and the clock; this decides what to send and what the answers mean.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::Transmit;
use super::stun::{self, Change, Stun, TxId};
use crate::consts::{NAT_TEST_RTO, NAT_TEST_TIMEOUT};

/// How a NAT treats a destination (RFC 4787 terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The same for every destination.
    EndpointIndependent,
    /// Depends on the destination's IP address.
    AddressDependent,
    /// Depends on the destination's IP address and port.
    AddressAndPortDependent,
}

impl Behaviour {
    /// The RFC 5780 words, as printed by `p2pchat nat --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndpointIndependent => "endpoint-independent",
            Self::AddressDependent => "address-dependent",
            Self::AddressAndPortDependent => "address-and-port-dependent",
        }
    }
}

/// The classic (RFC 3489) name of a NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatType {
    /// No NAT, no filtering.
    OpenInternet,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestrictedCone,
    /// A mapping per destination.
    Symmetric,
    /// No NAT, but a firewall that filters by destination.
    SymmetricFirewall,
    /// The STUN server never answered.
    Blocked,
    /// Not enough answers to tell.
    Unknown,
}

impl NatType {
    /// The classic name, as shown and as printed by `p2pchat nat --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenInternet => "Open Internet",
            Self::FullCone => "Full Cone",
            Self::RestrictedCone => "Restricted Cone",
            Self::PortRestrictedCone => "Port-Restricted Cone",
            Self::Symmetric => "Symmetric",
            Self::SymmetricFirewall => "Symmetric UDP Firewall",
            Self::Blocked => "UDP blocked",
            Self::Unknown => "unknown",
        }
    }

    /// Whether two peers with these NAT types can punch a direct path at all: a symmetric NAT
    /// gives every destination a new port, which only a peer that accepts any source (full
    /// cone or open) can learn from the first packet.
    pub fn can_punch(a: &str, b: &str) -> Option<bool> {
        let strict = |t: &str| {
            [
                Self::Symmetric,
                Self::SymmetricFirewall,
                Self::RestrictedCone,
                Self::PortRestrictedCone,
            ]
            .iter()
            .any(|k| k.as_str() == t)
        };
        let symmetric = Self::Symmetric.as_str();
        let known = |t: &str| t != Self::Unknown.as_str() && t != Self::Blocked.as_str();
        if !known(a) || !known(b) {
            return None;
        }
        Some(!((a == symmetric && strict(b)) || (b == symmetric && strict(a))))
    }
}

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Our public endpoint (mapping socket), if the server answered.
    pub public: Option<SocketAddr>,
    /// Mapping behaviour, if determined.
    pub mapping: Option<Behaviour>,
    /// Filtering behaviour, if determined.
    pub filtering: Option<Behaviour>,
    /// The classic name.
    pub nat_type: NatType,
    /// Tests that could not run or got no answer, in words.
    pub notes: Vec<String>,
}

/// Which of the two local sockets a datagram belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    /// Mapping tests.
    Mapping,
    /// Filtering tests.
    Filtering,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pending,
    Mapped(SocketAddr, Option<SocketAddr>),
    Refused,
    TimedOut,
}

struct Test {
    socket: Socket,
    to: SocketAddr,
    change: Change,
    txid: TxId,
    transmits: u32,
    next: Instant,
    deadline: Instant,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    MappingI,
    MappingII,
    MappingIII,
    FilteringI,
    FilteringII,
    Done,
}

/// One run of behaviour discovery against one server.
pub struct Probe {
    server: SocketAddr,
    mapping_local: SocketAddr,
    seed: u64,
    stage: Stage,
    tests: Vec<Test>,
    transmits: VecDeque<(Socket, Transmit)>,
    mapped: Vec<SocketAddr>,
    other: Option<SocketAddr>,
    mapping: Option<Behaviour>,
    filtering: Option<Behaviour>,
    notes: Vec<String>,
    blocked: bool,
}

impl Probe {
    /// Starts discovery against `server`. `mapping_local` is the mapping socket's address with
    /// the concrete local IP (to tell "no NAT" from "NAT"). `seed` makes transaction ids.
    pub fn new(server: SocketAddr, mapping_local: SocketAddr, now: Instant, seed: u64) -> Self {
        let mut probe = Self {
            server,
            mapping_local,
            seed,
            stage: Stage::MappingI,
            tests: Vec::new(),
            transmits: VecDeque::new(),
            mapped: Vec::new(),
            other: None,
            mapping: None,
            filtering: None,
            notes: Vec::new(),
            blocked: false,
        };
        probe.start(now, Socket::Mapping, server, Change::default());
        probe.send_due(now);
        probe
    }

    fn start(&mut self, now: Instant, socket: Socket, to: SocketAddr, change: Change) {
        // Transaction ids: the seed's bytes with a counter, distinct per test.
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut txid = [0u8; 12];
        txid[..8].copy_from_slice(&self.seed.to_be_bytes());
        txid[8..].copy_from_slice(&u32::try_from(self.tests.len()).unwrap_or(0).to_be_bytes());
        self.tests.push(Test {
            socket,
            to,
            change,
            txid,
            transmits: 0,
            next: now,
            deadline: now + NAT_TEST_TIMEOUT,
            outcome: Outcome::Pending,
        });
    }

    /// Feeds a datagram received on `socket`.
    pub fn handle_datagram(&mut self, now: Instant, socket: Socket, bytes: &[u8]) {
        let (txid, outcome) = match stun::parse(bytes) {
            Some(Stun::BindingSuccess { txid, mapped, other }) => {
                (txid, Outcome::Mapped(mapped, other))
            }
            Some(Stun::BindingError { txid }) => (txid, Outcome::Refused),
            _ => return,
        };
        if let Some(test) = self
            .tests
            .iter_mut()
            .find(|t| t.txid == txid && t.socket == socket && t.outcome == Outcome::Pending)
        {
            test.outcome = outcome;
        }
        self.advance(now);
    }

    /// Retransmits and times out tests whose deadlines have come.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.send_due(now);
        self.advance(now);
    }

    /// Sends every pending test whose (re)transmission is due; times out the expired ones.
    fn send_due(&mut self, now: Instant) {
        for test in self.tests.iter_mut().filter(|t| t.outcome == Outcome::Pending) {
            if now >= test.deadline {
                test.outcome = Outcome::TimedOut;
            } else if now >= test.next {
                if let Some(payload) = stun::binding_request(test.txid, test.change) {
                    self.transmits
                        .push_back((test.socket, Transmit { to: test.to, payload, ttl: None }));
                }
                test.next = now + NAT_TEST_RTO * 2u32.pow(test.transmits);
                test.transmits += 1;
            }
        }
    }

    /// The next datagram to send, and from which socket.
    pub fn poll_transmit(&mut self) -> Option<(Socket, Transmit)> {
        self.transmits.pop_front()
    }

    /// When to call `handle_timeout` next; `None` when done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tests
            .iter()
            .filter(|t| t.outcome == Outcome::Pending)
            .map(|t| t.next.min(t.deadline))
            .min()
    }

    /// The result, once every test has finished.
    pub fn report(&self) -> Option<Report> {
        (self.stage == Stage::Done).then(|| Report {
            public: self.mapped.first().copied(),
            mapping: self.mapping,
            filtering: self.filtering,
            nat_type: self.classify(),
            notes: self.notes.clone(),
        })
    }

    fn classify(&self) -> NatType {
        if self.blocked {
            return NatType::Blocked;
        }
        let no_nat = self.mapped.first() == Some(&self.mapping_local);
        match (self.mapping, self.filtering) {
            (Some(Behaviour::AddressDependent | Behaviour::AddressAndPortDependent), _) => {
                NatType::Symmetric
            }
            (Some(_), Some(Behaviour::EndpointIndependent)) if no_nat => NatType::OpenInternet,
            (Some(_), Some(_)) if no_nat => NatType::SymmetricFirewall,
            (Some(_), Some(Behaviour::EndpointIndependent)) => NatType::FullCone,
            (Some(_), Some(Behaviour::AddressDependent)) => NatType::RestrictedCone,
            (Some(_), Some(Behaviour::AddressAndPortDependent)) => NatType::PortRestrictedCone,
            _ => NatType::Unknown,
        }
    }

    /// Moves to the next stage once the current stage's tests have all finished.
    fn advance(&mut self, now: Instant) {
        while self.stage != Stage::Done && self.tests.iter().all(|t| t.outcome != Outcome::Pending)
        {
            self.finish_stage(now);
            self.send_due(now);
        }
    }

    fn last_mapped(&self) -> Option<SocketAddr> {
        match self.tests.last().map(|t| t.outcome) {
            Some(Outcome::Mapped(mapped, _)) => Some(mapped),
            _ => None,
        }
    }

    fn finish_stage(&mut self, now: Instant) {
        match self.stage {
            Stage::MappingI => {
                let Some(Outcome::Mapped(mapped, other)) = self.tests.last().map(|t| t.outcome)
                else {
                    self.blocked = true;
                    self.notes.push(format!(
                        "no answer from {} (server down, or UDP blocked)",
                        self.server
                    ));
                    self.stage = Stage::Done;
                    return;
                };
                self.mapped.push(mapped);
                self.other = other;
                match other {
                    None => {
                        self.notes.push(
                            "the server names no alternate address (OTHER-ADDRESS), so the \
                             mapping and filtering tests cannot run: use an RFC 5780 server, \
                             e.g. `p2pchat server --alt ADDR`"
                                .to_owned(),
                        );
                        self.stage = Stage::Done;
                    }
                    Some(_) if mapped == self.mapping_local => {
                        self.mapping = Some(Behaviour::EndpointIndependent);
                        self.start_filtering(now);
                    }
                    Some(other) => {
                        self.stage = Stage::MappingII;
                        let to = SocketAddr::new(other.ip(), self.server.port());
                        self.start(now, Socket::Mapping, to, Change::default());
                    }
                }
            }
            Stage::MappingII => match self.last_mapped() {
                Some(mapped) if Some(&mapped) == self.mapped.first() => {
                    self.mapping = Some(Behaviour::EndpointIndependent);
                    self.start_filtering(now);
                }
                Some(mapped) => {
                    self.mapped.push(mapped);
                    self.stage = Stage::MappingIII;
                    if let Some(other) = self.other {
                        self.start(now, Socket::Mapping, other, Change::default());
                    }
                }
                None => {
                    self.notes.push("mapping test II (alternate IP) got no answer".to_owned());
                    self.start_filtering(now);
                }
            },
            Stage::MappingIII => {
                match self.last_mapped() {
                    Some(mapped) if Some(&mapped) == self.mapped.get(1) => {
                        self.mapping = Some(Behaviour::AddressDependent);
                    }
                    Some(_) => self.mapping = Some(Behaviour::AddressAndPortDependent),
                    None => self
                        .notes
                        .push("mapping test III (alternate address) got no answer".to_owned()),
                }
                self.start_filtering(now);
            }
            Stage::FilteringI => {
                if self.last_mapped().is_none() {
                    self.notes.push("filtering test I got no answer".to_owned());
                    self.stage = Stage::Done;
                    return;
                }
                self.stage = Stage::FilteringII;
                let both = Change { ip: true, port: true };
                self.start(now, Socket::Filtering, self.server, both);
                let port = Change { ip: false, port: true };
                self.start(now, Socket::Filtering, self.server, port);
            }
            Stage::FilteringII => {
                let n = self.tests.len();
                let (both, port) = (self.tests[n - 2].outcome, self.tests[n - 1].outcome);
                self.filtering = match (both, port) {
                    (Outcome::Refused, _) | (_, Outcome::Refused) => {
                        self.notes.push(
                            "the server refused CHANGE-REQUEST (no alternate address)".to_owned(),
                        );
                        None
                    }
                    (Outcome::Mapped(..), _) => Some(Behaviour::EndpointIndependent),
                    (_, Outcome::Mapped(..)) => Some(Behaviour::AddressDependent),
                    _ => Some(Behaviour::AddressAndPortDependent),
                };
                self.stage = Stage::Done;
            }
            Stage::Done => {}
        }
    }

    fn start_filtering(&mut self, now: Instant) {
        self.stage = Stage::FilteringI;
        self.start(now, Socket::Filtering, self.server, Change::default());
    }
}

#[cfg(test)]
mod tests;
