//! The TURN client against the simulated TURN server (`sim`), which behaves as coturn 4.6.1
//! was seen to, with loss and simulated time.

use super::sim::{FakeTurn, Out};
use super::*;

const SECRET: &[u8] = b"the secret shared with coturn";
const USERNAME: &str = "1900000000:alice";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn server_addr() -> SocketAddr {
    addr("198.51.100.3:3478")
}

/// Our socket's address as the server sees it.
fn client_addr() -> SocketAddr {
    addr("198.51.100.10:40000")
}

/// The first relayed address the simulated server hands out.
fn relayed_addr() -> SocketAddr {
    addr("198.51.100.3:49153")
}

fn right_password() -> String {
    FakeTurn::new(server_addr(), SECRET).password(USERNAME)
}

fn credentials(password: &str) -> Credentials {
    Credentials {
        server: server_addr(),
        username: USERNAME.to_owned(),
        password: password.to_owned(),
    }
}

/// Client and server over a link that drops the datagrams `drop` says to (by count).
struct Link {
    client: TurnClient,
    server: FakeTurn,
    now: Instant,
    sent: u32,
    drop: Box<dyn FnMut(u32) -> bool>,
    events: Vec<TurnEvent>,
    inbound: Vec<(SocketAddr, Vec<u8>)>,
    /// What the server relayed to peers: (peer, payload, as ChannelData).
    delivered: Vec<(SocketAddr, Vec<u8>, bool)>,
}

impl Link {
    fn new(password: &str) -> Self {
        Self {
            client: TurnClient::new(credentials(password), 42),
            server: FakeTurn::new(server_addr(), SECRET),
            now: Instant::now(),
            sent: 0,
            drop: Box::new(|_| false),
            events: Vec::new(),
            inbound: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// Delivers everything queued both ways until quiet.
    fn settle(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(transmit) = self.client.poll_transmit() {
                assert_eq!(transmit.to, server_addr());
                assert!(transmit.payload.len() <= crate::consts::MAX_DATAGRAM_BYTES + 40);
                moved = true;
                self.sent += 1;
                if (self.drop)(self.sent) {
                    continue;
                }
                for Out { from, to, bytes, channel } in
                    self.server.handle(client_addr(), &transmit.payload)
                {
                    if from != server_addr() {
                        self.delivered.push((to, bytes, channel));
                    } else if let Some(data) = self.client.handle_datagram(self.now, &bytes) {
                        self.inbound.push(data);
                    }
                }
            }
            while let Some(event) = self.client.poll_event() {
                self.events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("no quiet after 100 rounds");
    }

    /// Advances simulated time to `at`, running every timer on the way.
    fn run_until(&mut self, at: Instant) {
        self.settle();
        while let Some(due) = self.client.poll_timeout().filter(|due| *due <= at) {
            self.now = due.max(self.now);
            self.client.handle_timeout(self.now);
            self.settle();
        }
        self.now = at;
    }

    fn allocated(&mut self) -> SocketAddr {
        self.client.allocate(self.now);
        self.settle();
        assert_eq!(self.events, vec![TurnEvent::Allocated { relayed: relayed_addr() }]);
        self.events.clear();
        relayed_addr()
    }

    /// A peer sends `payload` to our relayed address: what reaches us, if anything.
    fn peer_sends(&self, peer: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
        let relayed = self.client.relayed()?;
        self.server.relay_to_client(relayed, peer, payload).map(|out| out.bytes)
    }

    fn permitted(&self, ip: IpAddr) -> bool {
        self.server.allocations.get(&client_addr()).is_some_and(|a| a.permissions.contains(&ip))
    }

    fn failures(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TurnEvent::Failed { reason } => Some(reason.as_str()),
                _ => None,
            })
            .collect()
    }
}

const ALLOCATE_U16: u16 = 0x003;
const CHANNEL_BIND_U16: u16 = 0x009;

#[test]
fn allocates_after_the_401_dance_then_relays_both_ways_switching_to_a_channel() {
    let mut link = Link::new(&right_password());
    assert_eq!(link.allocated(), relayed_addr());
    assert_eq!(link.client.relayed(), Some(relayed_addr()));
    assert_eq!(
        link.server.requests,
        vec![(ALLOCATE_U16, false), (ALLOCATE_U16, true)],
        "unauthenticated first, then with MESSAGE-INTEGRITY"
    );
    let peer = addr("203.0.113.9:5000");
    link.client.send(link.now, peer, b"first");
    link.settle();
    link.client.send(link.now, peer, b"second");
    link.settle();
    assert_eq!(
        link.delivered,
        vec![(peer, b"first".to_vec(), false), (peer, b"second".to_vec(), true)],
        "a Send indication until the channel is bound, ChannelData after"
    );
    // Inbound: ChannelData once bound; a Data indication from a peer without a channel.
    let inbound = link.peer_sends(peer, b"hello back").unwrap();
    assert_eq!(inbound.len(), 4 + 10, "ChannelData: a 4-byte header");
    assert_eq!(
        link.client.handle_datagram(link.now, &inbound),
        Some((peer, b"hello back".to_vec()))
    );
    let other = addr("203.0.113.77:6000");
    link.client.permit(link.now, other);
    link.settle();
    let indication = link.peer_sends(other, b"via data").unwrap();
    assert_eq!(
        link.client.handle_datagram(link.now, &indication),
        Some((other, b"via data".to_vec()))
    );
    // Nobody else gets through the server at all.
    assert!(link.peer_sends(addr("192.0.2.200:1"), b"x").is_none());
}

#[test]
fn refreshes_at_half_the_lifetime_and_keeps_permissions_and_channels_alive() {
    let mut link = Link::new(&right_password());
    link.allocated();
    let start = link.now;
    let peer = addr("203.0.113.9:5000");
    link.client.send(link.now, peer, b"x");
    link.settle();
    link.server.requests.clear();
    link.run_until(start + Duration::from_secs(239));
    assert!(link.server.requests.is_empty(), "nothing before 240 s: {:?}", link.server.requests);
    link.run_until(start + Duration::from_secs(241));
    assert_eq!(
        link.server.requests,
        vec![(CHANNEL_BIND_U16, true)],
        "one ChannelBind refreshes both"
    );
    link.run_until(start + Duration::from_secs(301));
    assert_eq!(link.server.refreshes, vec![600], "the allocation at half of its 600 s");
    link.run_until(start + Duration::from_secs(3600));
    assert!(link.failures().is_empty(), "{:?}", link.events);
    assert_eq!(link.server.refreshes.len(), 12, "every 300 s for an hour");
    link.client.send(link.now, peer, b"still");
    link.settle();
    assert_eq!(link.delivered.last(), Some(&(peer, b"still".to_vec(), true)));
}

#[test]
fn a_stale_nonce_is_renewed_without_a_word() {
    let mut link = Link::new(&right_password());
    link.allocated();
    link.server.stale_next = true;
    let peer = addr("203.0.113.9:5000");
    link.client.permit(link.now, peer);
    link.settle();
    assert!(link.permitted(peer.ip()));
    assert!(link.events.is_empty(), "{:?}", link.events);
    // A nonce that goes stale again and again is not chased for ever.
    link.server.nonce = "changes".into();
    for i in 0..10 {
        link.server.stale_next = true;
        link.client.permit(link.now, addr(&format!("203.0.113.{}:1", 100 + i)));
        link.settle();
    }
    assert!(link.server.requests.len() < 40, "bounded: {}", link.server.requests.len());
}

#[test]
fn wrong_credentials_fail_once_with_one_sentence_and_no_retry_storm() {
    let mut link = Link::new("wrong password");
    link.client.allocate(link.now);
    link.settle();
    assert_eq!(link.failures().len(), 1, "{:?}", link.events);
    assert!(link.failures()[0].contains("static-auth-secret"), "{:?}", link.failures());
    let asked = link.server.requests.len();
    assert_eq!(asked, 2, "once without, once with credentials");
    link.run_until(link.now + Duration::from_secs(600));
    assert_eq!(link.server.requests.len(), asked, "nothing more until asked again");
    assert_eq!(link.client.relayed(), None);
    assert!(link.client.poll_timeout().is_none());
}

#[test]
fn each_refusal_of_the_allocation_is_one_clear_sentence() {
    for (code, words) in [(486, "quota"), (508, "full"), (403, "refuses"), (441, "credentials")] {
        let mut link = Link::new(&right_password());
        link.server.allocate_error = Some(code);
        link.client.allocate(link.now);
        link.settle();
        assert_eq!(link.failures().len(), 1, "{code}: {:?}", link.events);
        assert!(link.failures()[0].contains(words), "{code}: {:?}", link.failures());
        let asked = link.server.requests.len();
        link.run_until(link.now + Duration::from_secs(120));
        assert_eq!(link.server.requests.len(), asked, "{code}: no retries on its own");
    }
}

#[test]
fn a_peer_refused_by_policy_is_told_and_never_sent_to() {
    let mut link = Link::new(&right_password());
    link.allocated();
    let denied = addr("10.1.2.3:5000");
    link.server.denied.insert(denied.ip());
    link.client.send(link.now, denied, b"to a private network");
    link.settle();
    assert_eq!(link.events, vec![TurnEvent::PeerRefused { peer: denied.ip() }]);
    assert!(link.delivered.is_empty());
    let before = link.sent;
    for _ in 0..10 {
        link.client.send(link.now, denied, b"again");
    }
    link.settle();
    assert_eq!(link.sent, before, "nothing goes out for a refused peer");
    assert!(!link.client.permit(link.now, denied));
}

#[test]
fn an_old_allocation_on_our_address_is_deleted_and_made_again() {
    let mut link = Link::new(&right_password());
    // Left by an earlier run on this address.
    let old =
        super::sim::Allocation { relayed: Some(addr("198.51.100.3:49999")), ..Default::default() };
    link.server.allocations.insert(client_addr(), old);
    link.client.allocate(link.now);
    link.settle();
    assert_eq!(link.events, vec![TurnEvent::Allocated { relayed: relayed_addr() }]);
    assert_eq!(link.server.refreshes, vec![0], "Refresh LIFETIME=0 deleted the old one");
}

#[test]
fn lost_requests_are_retransmitted_with_the_same_bytes_then_given_up() {
    // Everything after the first 401 is lost.
    let mut link = Link::new(&right_password());
    link.drop = Box::new(|n| n >= 2);
    let start = link.now;
    link.client.allocate(link.now);
    link.settle();
    let mut times = Vec::new();
    let mut payloads = Vec::new();
    while let Some(due) = link.client.poll_timeout() {
        link.now = due;
        link.client.handle_timeout(due);
        while let Some(t) = link.client.poll_transmit() {
            times.push(due.duration_since(start).as_millis());
            payloads.push(t.payload);
        }
        while let Some(e) = link.client.poll_event() {
            link.events.push(e);
        }
    }
    assert_eq!(times, vec![500, 1500, 3500, 7500], "RTO 500 ms, doubling");
    assert!(payloads.windows(2).all(|w| w[0] == w[1]), "the same transaction each time");
    assert_eq!(link.failures().len(), 1);
    assert!(link.failures()[0].contains("does not answer"), "{:?}", link.failures());
}

#[test]
fn one_lost_answer_costs_one_retransmission() {
    let mut link = Link::new(&right_password());
    link.drop = Box::new(|n| n == 2); // the authenticated Allocate's first copy
    link.client.allocate(link.now);
    link.settle();
    assert!(link.events.is_empty());
    link.run_until(link.now + Duration::from_millis(600));
    assert_eq!(link.events, vec![TurnEvent::Allocated { relayed: relayed_addr() }]);
}

#[test]
fn a_server_that_forgot_us_is_noticed_and_reported() {
    let mut link = Link::new(&right_password());
    link.allocated();
    link.server.allocations.clear(); // restarted
    link.client.check(link.now);
    link.settle();
    assert_eq!(link.events, vec![TurnEvent::Lost]);
    assert_eq!(link.client.relayed(), None);
    // Asked again, it allocates afresh.
    link.events.clear();
    link.client.allocate(link.now);
    link.settle();
    assert!(matches!(link.events[..], [TurnEvent::Allocated { .. }]), "{:?}", link.events);
}

#[test]
fn close_deletes_the_allocation_and_stops() {
    let mut link = Link::new(&right_password());
    link.allocated();
    link.client.close();
    link.settle();
    assert_eq!(link.server.refreshes, vec![0]);
    assert!(!link.server.allocations.contains_key(&client_addr()));
    assert!(link.client.poll_timeout().is_none());
    link.client.allocate(link.now);
    link.client.send(link.now, addr("203.0.113.9:5000"), b"x");
    assert!(link.client.poll_transmit().is_none(), "closed means closed");
}

#[test]
fn forged_answers_are_ignored() {
    let mut link = Link::new(&right_password());
    link.client.allocate(link.now);
    // The unauthenticated Allocate: answer it with a success nobody signed.
    let request = link.client.poll_transmit().unwrap();
    let txid = TransactionId::new(request.payload[8..20].try_into().unwrap());
    let forged = link.server.respond(
        MessageClass::SuccessResponse,
        ALLOCATE,
        txid,
        vec![XorRelayAddress::new(addr("6.6.6.6:6666")).into()],
        None,
    );
    assert_eq!(link.client.handle_datagram(link.now, &forged), None);
    assert!(link.client.poll_event().is_none());
    assert_eq!(link.client.relayed(), None, "an unsigned success is not an allocation");
    // An error other than 401/438 without integrity is ignored too.
    let forged_error = link.server.respond(
        MessageClass::ErrorResponse,
        ALLOCATE,
        txid,
        vec![ErrorCode::new(486, "no".into()).unwrap().into()],
        None,
    );
    link.client.handle_datagram(link.now, &forged_error);
    assert!(link.client.poll_event().is_none());
}

#[test]
fn channel_data_frames_are_read_strictly() {
    let frame = channel_data(0x4001, b"abcde");
    assert_eq!(frame, vec![0x40, 0x01, 0, 5, b'a', b'b', b'c', b'd', b'e']);
    assert_eq!(parse_channel_data(&frame), Some((0x4001, &b"abcde"[..])));
    let mut padded = frame.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    assert_eq!(parse_channel_data(&padded), Some((0x4001, &b"abcde"[..])), "padding is allowed");
    assert_eq!(parse_channel_data(&frame[..8]), None, "shorter than its length");
    assert_eq!(parse_channel_data(&[0x50, 0, 0, 0]), None, "outside 0x4000-0x4FFF");
    assert_eq!(parse_channel_data(&[0x3f, 0xff, 0, 0]), None);
    assert_eq!(parse_channel_data(&[0x40, 0]), None);
}

#[test]
fn garbage_from_the_server_never_panics() {
    let mut link = Link::new(&right_password());
    link.allocated();
    let mut seed = 7u64;
    for len in 0..2000usize {
        let bytes: Vec<u8> = (0..len % 300)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        let mut bytes = bytes;
        if len % 3 == 0 && bytes.len() >= 4 {
            bytes[0] = 0x40; // ChannelData-looking
        }
        if len % 5 == 0 && bytes.len() >= 20 {
            bytes[0] = 0x01;
            bytes[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        let _ = link.client.handle_datagram(link.now, &bytes);
    }
    assert_eq!(link.client.relayed(), Some(relayed_addr()));
}
