//! The rendezvous server (with a relay to offer and an alternate address) fed datagrams from a
//! few sources — rendezvous JSON, STUN of both RFC generations, garbage — with time passing,
//! each source echoing the cookies it is asked for. It must never panic, and only ever answer
//! from one of its own addresses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use p2pchat::proto::wire::FromServer;
use p2pchat::server::{Addresses, Server, TurnRelay};

/// One input.
pub fn run(data: &[u8]) {
    let primary: SocketAddr = "198.51.100.1:7777".parse().expect("address");
    let alt: SocketAddr = "198.51.100.2:7778".parse().expect("address");
    let addresses = Addresses { primary, alt: Some(alt) };
    let start = Instant::now();
    let relay = TurnRelay::new("198.51.100.3:3478".parse().expect("address"), b"secret".to_vec());
    let mut server = Server::new(addresses).with_turn(relay, start, 1_900_000_000);
    let mut now = start;
    let own = addresses.all();
    // Datagrams: a control byte (source, local address, time step), a length byte, the bytes.
    let mut rest = data;
    while let [control, len, body @ ..] = rest {
        let len = usize::from(*len).min(body.len());
        let (bytes, tail) = body.split_at(len);
        rest = tail;
        let from = SocketAddr::from(([203, 0, 113, control % 4], 5000 + u16::from(control % 3)));
        let local = own[usize::from(control >> 6) % own.len()];
        for reply in server.handle(now, local, from, bytes) {
            assert!(own.contains(&reply.via));
            // A sender that receives: asked for a cookie, it asks again with it, so the fuzzer
            // reaches what lies behind address validation.
            let asked = serde_json::from_slice::<FromServer>(&reply.transmit.payload);
            if let Ok(FromServer::Cookie { cookie }) = asked
                && let Ok(serde_json::Value::Object(mut request)) = serde_json::from_slice(bytes)
            {
                request.insert("cookie".into(), cookie.into());
                let again = serde_json::to_vec(&request).expect("a JSON object");
                for reply in server.handle(now, local, from, &again) {
                    assert!(own.contains(&reply.via));
                }
            }
        }
        now += Duration::from_millis(u64::from(control & 0x30) * 250);
        server.handle_timeout(now);
        let _ = server.poll_timeout();
    }
}
