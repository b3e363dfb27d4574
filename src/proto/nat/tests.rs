//! Discovery against simulated NATs of every RFC 4787 kind, with the real server core as the
//! STUN server and simulated time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::server::{Addresses, Server};

const PRIMARY: &str = "198.51.100.1:3478";
const ALT: &str = "198.51.100.2:3479";
const MAPPING_LOCAL: &str = "192.0.2.10:5000";
const FILTERING_LOCAL: &str = "192.0.2.10:5001";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A NAT with the given mapping and filtering behaviour, public IP 203.0.113.1.
struct Nat {
    mapping: Behaviour,
    filtering: Behaviour,
    ports: HashMap<(SocketAddr, Option<SocketAddr>), u16>,
    allowed: HashSet<(u16, SocketAddr)>,
    next_port: u16,
}

impl Nat {
    fn new(mapping: Behaviour, filtering: Behaviour) -> Self {
        Self {
            mapping,
            filtering,
            ports: HashMap::new(),
            allowed: HashSet::new(),
            next_port: 40000,
        }
    }

    fn outbound(&mut self, from: SocketAddr, to: SocketAddr) -> SocketAddr {
        let key = match self.mapping {
            Behaviour::EndpointIndependent => (from, None),
            Behaviour::AddressDependent => (from, Some(SocketAddr::new(to.ip(), 0))),
            Behaviour::AddressAndPortDependent => (from, Some(to)),
        };
        let next = &mut self.next_port;
        let port = *self.ports.entry(key).or_insert_with(|| {
            *next += 1;
            *next
        });
        self.allowed.insert((port, to));
        addr(&format!("203.0.113.1:{port}"))
    }

    fn inbound(&self, from: SocketAddr, to_port: u16) -> Option<SocketAddr> {
        let internal = self.ports.iter().find(|(_, p)| **p == to_port).map(|((i, _), _)| *i)?;
        let ok = match self.filtering {
            Behaviour::EndpointIndependent => true,
            Behaviour::AddressDependent => {
                self.allowed.iter().any(|(p, a)| *p == to_port && a.ip() == from.ip())
            }
            Behaviour::AddressAndPortDependent => self.allowed.contains(&(to_port, from)),
        };
        ok.then_some(internal)
    }
}

/// Runs a probe to completion; `nat: None` means no NAT, `alt: None` a server without one.
fn run(nat: Option<Nat>, alt: Option<&str>, server_up: bool) -> (Report, Duration) {
    let start = Instant::now();
    let mut now = start;
    let addresses = Addresses { primary: addr(PRIMARY), alt: alt.map(addr) };
    let mut server = Server::new(addresses);
    let mut nat = nat;
    let mut probe = Probe::new(addr(PRIMARY), addr(MAPPING_LOCAL), now, 42);
    for _ in 0..1000 {
        while let Some((socket, t)) = probe.poll_transmit() {
            let local = addr(match socket {
                Socket::Mapping => MAPPING_LOCAL,
                Socket::Filtering => FILTERING_LOCAL,
            });
            let seen_from = match nat.as_mut() {
                Some(nat) => nat.outbound(local, t.to),
                None => local,
            };
            if !server_up || !addresses.all().contains(&t.to) {
                continue;
            }
            for reply in server.handle(now, t.to, seen_from, &t.payload) {
                let delivered = match nat.as_ref() {
                    Some(nat) => nat.inbound(reply.via, reply.transmit.to.port()),
                    None => Some(reply.transmit.to),
                };
                let Some(internal) = delivered else { continue };
                let socket = if internal == addr(MAPPING_LOCAL) {
                    Socket::Mapping
                } else {
                    Socket::Filtering
                };
                probe.handle_datagram(now, socket, &reply.transmit.payload);
            }
        }
        if let Some(report) = probe.report() {
            return (report, now - start);
        }
        now = probe.poll_timeout().expect("a pending test has a deadline").max(now);
        probe.handle_timeout(now);
    }
    panic!("probe never finished");
}

use Behaviour::{
    AddressAndPortDependent as Apd, AddressDependent as Ad, EndpointIndependent as Ei,
};

#[test]
fn classifies_every_nat_kind() {
    let cases = [
        (Ei, Ei, NatType::FullCone),
        (Ei, Ad, NatType::RestrictedCone),
        (Ei, Apd, NatType::PortRestrictedCone),
        (Ad, Apd, NatType::Symmetric),
        (Apd, Apd, NatType::Symmetric),
        (Apd, Ei, NatType::Symmetric),
    ];
    for (mapping, filtering, expected) in cases {
        let (report, _) = run(Some(Nat::new(mapping, filtering)), Some(ALT), true);
        assert_eq!(report.mapping, Some(mapping), "{mapping:?}/{filtering:?}");
        assert_eq!(report.filtering, Some(filtering), "{mapping:?}/{filtering:?}");
        assert_eq!(report.nat_type, expected, "{mapping:?}/{filtering:?}");
        assert_eq!(report.public, Some(addr("203.0.113.1:40001")));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }
}

#[test]
fn no_nat_is_open_internet() {
    let (report, _) = run(None, Some(ALT), true);
    assert_eq!(report.nat_type, NatType::OpenInternet);
    assert_eq!(report.public, Some(addr(MAPPING_LOCAL)));
    assert_eq!((report.mapping, report.filtering), (Some(Ei), Some(Ei)));
}

#[test]
fn server_without_alternate_reports_what_it_can() {
    let (report, _) = run(Some(Nat::new(Ei, Apd)), None, true);
    assert_eq!(report.nat_type, NatType::Unknown);
    assert_eq!(report.public, Some(addr("203.0.113.1:40001")));
    assert_eq!((report.mapping, report.filtering), (None, None));
    assert!(report.notes[0].contains("OTHER-ADDRESS"), "{:?}", report.notes);
}

#[test]
fn unreachable_server_is_blocked_within_the_timeout() {
    let (report, took) = run(Some(Nat::new(Ei, Ei)), Some(ALT), false);
    assert_eq!(report.nat_type, NatType::Blocked);
    assert_eq!(report.public, None);
    assert!(report.notes[0].contains("no answer from 198.51.100.1:3478"));
    assert_eq!(took, NAT_TEST_TIMEOUT);
}

#[test]
fn punchability_by_type() {
    let t = |a: NatType, b: NatType| NatType::can_punch(a.as_str(), b.as_str());
    assert_eq!(t(NatType::Symmetric, NatType::Symmetric), Some(false));
    assert_eq!(t(NatType::Symmetric, NatType::PortRestrictedCone), Some(false));
    assert_eq!(t(NatType::FullCone, NatType::Symmetric), Some(true));
    assert_eq!(t(NatType::PortRestrictedCone, NatType::PortRestrictedCone), Some(true));
    assert_eq!(t(NatType::Unknown, NatType::Symmetric), None);
}
