//! The TURN client fed whatever its server's address sends: answers, indications, ChannelData,
//! garbage — interleaved with time passing. It must never panic, and never send anything but
//! datagrams to its server.

use std::time::{Duration, Instant};

use p2pchat::proto::turn::{Credentials, TurnClient, parse_channel_data};

/// One input.
pub fn run(data: &[u8]) {
    let server = "198.51.100.3:3478".parse().expect("address");
    let credentials =
        Credentials { server, username: "1900000000:fuzz".into(), password: "c2VjcmV0".into() };
    let mut client = TurnClient::new(credentials, 7);
    let mut now = Instant::now();
    client.allocate(now);
    // Datagrams: a length byte, then that many bytes; the byte after says how long passes.
    let mut rest = data;
    while let [len, body @ ..] = rest {
        let len = usize::from(*len).min(body.len());
        let (datagram, tail) = body.split_at(len);
        let _ = parse_channel_data(datagram);
        let _ = client.handle_datagram(now, datagram);
        if let [step, after @ ..] = tail {
            now += Duration::from_millis(u64::from(*step) * 40);
            client.handle_timeout(now);
            if step % 7 == 0 {
                client.send(now, "203.0.113.9:5000".parse().expect("address"), datagram);
            }
            if step % 31 == 0 {
                client.check(now);
            }
            rest = after;
        } else {
            rest = tail;
        }
        while let Some(transmit) = client.poll_transmit() {
            assert_eq!(transmit.to, server);
        }
        while client.poll_event().is_some() {}
        let _ = client.poll_timeout();
    }
}
