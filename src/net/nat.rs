//! Running NAT behaviour discovery (`proto::nat::Probe`) on two fresh sockets of its own, so the
//! chat socket's mapping is never disturbed. Bounded: every test has a deadline.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::time::sleep_until;

use crate::consts::RECV_BUFFER_BYTES;
use crate::proto::nat::{Probe, Report, Socket};

/// The local IP the OS would use to reach `server` (no packet is sent).
fn route_ip(bind_ip: IpAddr, server: SocketAddr) -> std::io::Result<IpAddr> {
    if !bind_ip.is_unspecified() {
        return Ok(bind_ip);
    }
    let socket = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0))?;
    socket.connect(server)?;
    Ok(socket.local_addr()?.ip())
}

/// Runs RFC 5780 discovery against `server` from two new sockets on `bind_ip`.
pub async fn detect(server: SocketAddr, bind_ip: IpAddr) -> std::io::Result<Report> {
    let mapping = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    let filtering = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    let mapping_local = SocketAddr::new(route_ip(bind_ip, server)?, mapping.local_addr()?.port());
    let mut probe = Probe::new(server, mapping_local, Instant::now(), rand::random());
    let (mut buf_m, mut buf_f) = (vec![0u8; RECV_BUFFER_BYTES], vec![0u8; RECV_BUFFER_BYTES]);
    loop {
        while let Some((socket, transmit)) = probe.poll_transmit() {
            let socket = match socket {
                Socket::Mapping => &mapping,
                Socket::Filtering => &filtering,
            };
            // A failed send is an unanswered test: the probe's deadline handles it.
            if let Err(error) = socket.send_to(&transmit.payload, transmit.to).await {
                tracing::debug!(%error, to = %transmit.to, "NAT test send failed");
            }
        }
        if let Some(report) = probe.report() {
            return Ok(report);
        }
        let deadline = probe.poll_timeout().unwrap_or_else(Instant::now);
        tokio::select! {
            received = mapping.recv_from(&mut buf_m) => if let Ok((len, _)) = received {
                probe.handle_datagram(Instant::now(), Socket::Mapping, &buf_m[..len]);
            },
            received = filtering.recv_from(&mut buf_f) => if let Ok((len, _)) = received {
                probe.handle_datagram(Instant::now(), Socket::Filtering, &buf_f[..len]);
            },
            () = sleep_until(deadline.into()) => probe.handle_timeout(Instant::now()),
        }
    }
}
