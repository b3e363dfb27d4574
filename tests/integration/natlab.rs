//! The NAT lab: real Linux NATs (nftables) in network namespaces. A bridge is the "internet"
//! (198.51.100.0/24); a server namespace holds three public addresses and runs
//! `p2pchat server --alt --turn` on the first two (the second for CHANGE-REQUEST), Debian's
//! stund on the same two, and Debian's coturn on the third, with an auth secret shared with the
//! p2pchat server; routers masquerade their LANs (192.0.2.0/24, cut into /26s) in one of three
//! ways, with or without a firewall on their WAN side. Needs root, CAP_NET_ADMIN, nftables,
//! stund, coturn and conntrack: without them the tests skip with the reason, unless
//! `P2PCHAT_REQUIRE_ALL=1` (CI).
//! Namespaces are named per test run and removed on drop, also when a test fails.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Proc, TempDir, keygen, skip_or_fail};
use crate::terminal::Tmux;

/// How a router translates its LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `masquerade persistent`: endpoint-independent mapping, port-dependent filtering.
    Cone,
    /// The same plus a prerouting DNAT of inbound UDP to the host: endpoint-independent
    /// filtering too.
    FullCone,
    /// `masquerade random,fully-random`: a mapping per destination.
    Symmetric,
}

const SERVER_IP: &str = "198.51.100.1";
const SERVER_ALT_IP: &str = "198.51.100.2";
const P2PCHAT_SERVER: &str = "198.51.100.1:7777";
const STUND: &str = "198.51.100.1:3478";
const PUBLIC_HOST_IP: &str = "198.51.100.50";
const TURN_IP: &str = "198.51.100.3";
const TURN: &str = "198.51.100.3:3478";
/// coturn's static-auth-secret in the lab (the p2pchat server reads it from a file).
const TURN_SECRET: &str = "lab-secret-3f9a1c";

/// Why the lab cannot run here, if it cannot.
fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("the NAT lab needs root (network namespaces)".to_owned());
    }
    for tool in ["ip", "nft", "conntrack", "stund", "turnserver"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!(
                "the NAT lab needs `{tool}` (apt-get install iproute2 nftables conntrack stun-server \
                 coturn)"
            ));
        }
    }
    None
}

/// Runs a command and fails the test, with its output, if it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lab: namespaces, processes in them, cleaned up on drop.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    routers: usize,
    procs: Vec<Proc>,
    /// coturn's process, apart so a test can restart it.
    coturn: Option<Proc>,
    /// The secret file, coturn's database and log.
    dir: TempDir,
}

/// A host behind a router (or on the internet).
#[derive(Debug, Clone)]
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its router's namespace, if it has one.
    pub router: Option<String>,
    /// Its public address: its router's WAN side, or its own.
    pub public: Ipv4Addr,
}

impl Lab {
    /// A new lab with the internet bridge and the server namespace, servers running. `None`
    /// when the machine cannot host it (and the test should skip).
    pub fn new() -> Option<Self> {
        if let Some(reason) = missing_prerequisite() {
            skip_or_fail(&reason);
            return None;
        }
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("p2p{}x{n}", std::process::id());
        let dir = TempDir::new(&format!("lab-{prefix}"));
        let mut lab = Self {
            prefix,
            namespaces: Vec::new(),
            routers: 0,
            procs: Vec::new(),
            coturn: None,
            dir,
        };
        let inet = lab.namespace("inet");
        run(&["ip", "-n", &inet, "link", "add", "br0", "type", "bridge"]);
        run(&["ip", "-n", &inet, "link", "set", "br0", "up"]);
        let srv = lab.namespace("srv");
        lab.wire(&srv, "eth0", &inet, "vsrv");
        run(&["ip", "-n", &inet, "link", "set", "vsrv", "master", "br0"]);
        for ip in [SERVER_IP, SERVER_ALT_IP, TURN_IP] {
            run(&["ip", "-n", &srv, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        }
        lab.start_coturn();
        let secret_file = lab.dir.path().join("turn-secret");
        std::fs::write(&secret_file, format!("{TURN_SECRET}\n")).expect("write the secret");
        let mut server = Command::new("ip");
        server.args(["netns", "exec", &srv, env!("CARGO_BIN_EXE_p2pchat"), "server"]);
        server.args(["--listen", P2PCHAT_SERVER, "--alt", "198.51.100.2:7778", "--turn", TURN]);
        server.arg("--turn-secret-file").arg(&secret_file);
        let mut server = Proc::spawn(server);
        server.line(Duration::from_secs(10)).expect("the lab server starts");
        lab.procs.push(server);
        let mut stund = Command::new("ip");
        stund.args(["netns", "exec", &srv, "stund", "-h", SERVER_IP, "-a", SERVER_ALT_IP]);
        lab.procs.push(Proc::spawn(stund));
        Some(lab)
    }

    /// Starts Debian's coturn in the server namespace (again, after `stop_coturn`), as the
    /// README's turnserver.conf would: REST credentials, UDP only, no CLI, its own log.
    pub fn start_coturn(&mut self) {
        let srv = format!("{}-srv", self.prefix);
        let dir = self.dir.path();
        let mut coturn = Command::new("ip");
        coturn.args(["netns", "exec", &srv, "turnserver", "-n", "--no-cli", "--no-tcp"]);
        coturn.args(["--no-tls", "--no-dtls", "--no-tcp-relay", "--fingerprint"]);
        coturn.args(["--listening-ip", TURN_IP, "--listening-port", "3478"]);
        coturn.args(["--relay-ip", TURN_IP, "--min-port", "49160", "--max-port", "49999"]);
        coturn.args(["--realm", "lab.p2pchat.test", "--use-auth-secret"]);
        coturn.arg(format!("--static-auth-secret={TURN_SECRET}"));
        coturn.args(["--user-quota", "4", "--no-multicast-peers", "--simple-log"]);
        coturn.arg("--userdb").arg(dir.join("turndb"));
        coturn.arg("--log-file").arg(dir.join("turn.log"));
        coturn.arg("--pidfile").arg(dir.join("turn.pid"));
        let coturn = Proc::spawn(coturn);
        // Ready when it answers a STUN Binding request on its port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.stun_answers(&srv, TURN) {
            assert!(Instant::now() < deadline, "coturn did not start within 10 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.coturn = Some(coturn);
    }

    /// Stops coturn (all its allocations are gone).
    pub fn stop_coturn(&mut self) {
        self.coturn = None;
    }

    /// True when a STUN server at `addr` answers a Binding request sent from namespace `ns`.
    fn stun_answers(&self, ns: &str, addr: &str) -> bool {
        String::from_utf8_lossy(&nat_json(ns, addr).stdout).contains("\"public\":\"")
    }

    fn namespace(&mut self, role: &str) -> String {
        let ns = format!("{}-{role}", self.prefix);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair with one end in each namespace, both up.
    fn wire(&self, a: &str, a_name: &str, b: &str, b_name: &str) {
        run(&[
            "ip", "link", "add", a_name, "netns", a, "type", "veth", "peer", "name", b_name,
            "netns", b,
        ]);
        run(&["ip", "-n", a, "link", "set", a_name, "up"]);
        run(&["ip", "-n", b, "link", "set", b_name, "up"]);
    }

    /// A router of `kind` with `hosts` hosts behind it, dropping unsolicited traffic to itself
    /// as home routers do.
    pub fn router(&mut self, kind: Kind, hosts: usize) -> Vec<Host> {
        self.router_with(kind, hosts, true)
    }

    /// A router of `kind` with `hosts` hosts behind it and no firewall on its WAN side: an
    /// early probe from a peer reaches it and leaves conntrack state that makes it remap our
    /// own probe to that peer (`../shared/notes/relay.md` §1.8). It hangs off an ISP router,
    /// as a home router does: one routed hop (with proxy ARP, so its address stays on the
    /// internet's /24) between it and everyone else.
    pub fn router_without_firewall(&mut self, kind: Kind, hosts: usize) -> Vec<Host> {
        self.router_with(kind, hosts, false)
    }

    fn router_with(&mut self, kind: Kind, hosts: usize, firewall: bool) -> Vec<Host> {
        let k = self.routers;
        self.routers += 1;
        let inet = format!("{}-inet", self.prefix);
        let router = self.namespace(&format!("r{k}"));
        let wan_ip = format!("198.51.100.{}", 10 + k);
        if firewall {
            self.wire(&router, "wan", &inet, &format!("vr{k}"));
            run(&["ip", "-n", &inet, "link", "set", &format!("vr{k}"), "master", "br0"]);
            run(&["ip", "-n", &router, "addr", "add", &format!("{wan_ip}/24"), "dev", "wan"]);
        } else {
            let isp = self.namespace(&format!("isp{k}"));
            let isp_ip = format!("198.51.100.{}", 150 + k);
            self.wire(&isp, "uplink", &inet, &format!("vi{k}"));
            run(&["ip", "-n", &inet, "link", "set", &format!("vi{k}"), "master", "br0"]);
            self.wire(&router, "wan", &isp, "home");
            run(&["ip", "-n", &isp, "addr", "add", &format!("{isp_ip}/24"), "dev", "uplink"]);
            run(&["ip", "-n", &isp, "addr", "add", &format!("{isp_ip}/32"), "dev", "home"]);
            run(&["ip", "-n", &isp, "route", "add", &format!("{wan_ip}/32"), "dev", "home"]);
            for setting in ["net.ipv4.ip_forward=1", "net.ipv4.conf.uplink.proxy_arp=1"] {
                run(&["ip", "netns", "exec", &isp, "sysctl", "-qw", setting]);
            }
            run(&["ip", "-n", &router, "addr", "add", &format!("{wan_ip}/32"), "dev", "wan"]);
            run(&["ip", "-n", &router, "route", "add", &format!("{isp_ip}/32"), "dev", "wan"]);
            let via = ["route", "add", "198.51.100.0/24", "via", &isp_ip, "dev", "wan"];
            run(&[&["ip", "-n", &router][..], &via[..]].concat());
        }
        run(&["ip", "-n", &router, "link", "add", "lan", "type", "bridge"]);
        run(&["ip", "-n", &router, "link", "set", "lan", "up"]);
        let base = 64 * u8::try_from(k % 4).expect("small");
        let gateway = Ipv4Addr::new(192, 0, 2, base + 1);
        run(&["ip", "-n", &router, "addr", "add", &format!("{gateway}/26"), "dev", "lan"]);
        run(&["ip", "netns", "exec", &router, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let mut out = Vec::new();
        for j in 0..hosts {
            let host = self.namespace(&format!("h{k}{j}"));
            let ip = Ipv4Addr::new(192, 0, 2, base + 10 + u8::try_from(j).expect("small"));
            self.wire(&host, "eth0", &router, &format!("vh{j}"));
            run(&["ip", "-n", &router, "link", "set", &format!("vh{j}"), "master", "lan"]);
            run(&["ip", "-n", &host, "addr", "add", &format!("{ip}/26"), "dev", "eth0"]);
            run(&["ip", "-n", &host, "route", "add", "default", "via", &gateway.to_string()]);
            let public = wan_ip.parse().expect("ip");
            out.push(Host { ns: host, ip, router: Some(router.clone()), public });
        }
        let masquerade = match kind {
            Kind::Cone | Kind::FullCone => "masquerade persistent",
            Kind::Symmetric => "masquerade random,fully-random",
        };
        let mut rules = format!(
            "table ip nat {{\n chain post {{ type nat hook postrouting priority srcnat; \
             oifname \"wan\" {masquerade}; }}\n"
        );
        if kind == Kind::FullCone {
            let target = out.first().map(|h| h.ip).expect("a full-cone router has a host");
            rules.push_str(&format!(
                " chain pre {{ type nat hook prerouting priority dstnat; \
                 iifname \"wan\" udp dport 1024-65535 dnat to {target}; }}\n"
            ));
        }
        rules.push_str("}\n");
        // Like any home router, drop unsolicited traffic to the router itself. Without this,
        // Linux answers a peer's early probe with ICMP and keeps conntrack state for it, and
        // that state makes the NAT pick a new port for our own probe to that peer.
        if firewall {
            rules.push_str(
                "table inet fw {\n chain input { type filter hook input priority 0; \
                 iifname \"wan\" ct state new drop; }\n}\n",
            );
        }
        self.nft(&router, &rules);
        out
    }

    /// A host directly on the internet, no NAT.
    pub fn public_host(&mut self) -> Host {
        let inet = format!("{}-inet", self.prefix);
        let host = self.namespace("pub");
        self.wire(&host, "eth0", &inet, "vpub");
        run(&["ip", "-n", &inet, "link", "set", "vpub", "master", "br0"]);
        run(&["ip", "-n", &host, "addr", "add", &format!("{PUBLIC_HOST_IP}/24"), "dev", "eth0"]);
        let ip: Ipv4Addr = PUBLIC_HOST_IP.parse().expect("ip");
        Host { ns: host, ip, router: None, public: ip }
    }

    /// Loads an nftables ruleset into a namespace.
    pub fn nft(&self, ns: &str, rules: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("write rules");
        assert!(child.wait().expect("nft").success(), "nft rejected:\n{rules}");
    }

    /// Drops `percent`% of UDP forwarded by a router.
    pub fn lossy(&self, router: &str, percent: u32) {
        self.nft(
            router,
            &format!(
                "table inet loss {{\n chain drops {{\n  type filter hook forward priority 0;\n  \
                 meta l4proto udp numgen random mod 100 < {percent} drop\n }}\n}}\n"
            ),
        );
    }

    /// Cuts (or, with `false`, restores) all UDP a router forwards.
    pub fn outage(&self, router: &str, cut: bool) {
        if cut {
            self.nft(
                router,
                "table inet outage {\n chain drops {\n  type filter hook forward priority -10;\n  \
                 meta l4proto udp drop\n }\n}\n",
            );
        } else {
            run(&["ip", "netns", "exec", router, "nft", "delete", "table", "inet", "outage"]);
        }
    }

    /// Cuts (or, with `false`, restores) UDP between two hosts' public addresses, in both
    /// routers: their direct path dies, while each still reaches the servers and the relay.
    pub fn cut_direct(&self, a: &Host, b: &Host, cut: bool) {
        for (host, other) in [(a, b), (b, a)] {
            let router = host.router.as_ref().expect("a host behind a router");
            if cut {
                self.nft(
                    router,
                    &format!(
                        "table inet direct {{\n chain drops {{\n  type filter hook forward \
                         priority -10;\n  ip daddr {} meta l4proto udp drop\n  ip saddr {} \
                         meta l4proto udp drop\n }}\n}}\n",
                        other.public, other.public
                    ),
                );
            } else {
                run(&["ip", "netns", "exec", router, "nft", "delete", "table", "inet", "direct"]);
            }
        }
    }

    /// Forgets every NAT mapping of a router, as a reboot or a conntrack timeout would.
    pub fn flush_conntrack(&self, router: &str) {
        let _ = Command::new("ip")
            .args(["netns", "exec", router, "conntrack", "-F"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `p2pchat nat --json` run in a host against `stun`.
    pub fn detect(&self, host: &Host, stun: &str) -> Value {
        let out = nat_json(&host.ns, stun);
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
            panic!(
                "p2pchat nat printed {stdout:?}, stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// A headless chat in a host, in `room` of the lab server.
    /// Each peer logs under `data`/`room`-`name`, its own data directory.
    pub fn peer(&self, host: &Host, name: &str, room: &str, key: &str, data: &TempDir) -> Proc {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_p2pchat"), "chat", "--headless"])
            .args(["--name", name, "--room", room, "--server", P2PCHAT_SERVER])
            .arg("--data-dir")
            .arg(data.path().join(format!("{room}-{name}")))
            .env("P2PCHAT_KEY", key)
            .env("P2PCHAT_CONFIG", crate::harness::NO_CONFIG);
        Proc::spawn(c)
    }

    /// A headless chat in a host that pairs or reaches a contact (`target`: a code, a
    /// contact's name, or nothing to ask for a code), its identity and logs under `home`.
    pub fn person(
        &self,
        host: &Host,
        name: &str,
        target: Option<&str>,
        home: &std::path::Path,
    ) -> Proc {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_p2pchat"), "chat", "--headless"])
            .args(["--name", name, "--server", P2PCHAT_SERVER])
            .args(target)
            .arg("--data-dir")
            .arg(home.join("data"))
            .env_remove("P2PCHAT_KEY")
            .env("P2PCHAT_CONFIG", crate::harness::home_config(home));
        Proc::spawn(c)
    }
}

/// `p2pchat nat --json --stun STUN` run in namespace `ns`.
fn nat_json(ns: &str, stun: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_p2pchat"), "nat", "--json"])
        .args(["--stun", stun])
        .env("P2PCHAT_CONFIG", crate::harness::NO_CONFIG)
        .output()
        .expect("spawn p2pchat nat")
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.procs.clear();
        self.coturn = None;
        for ns in self.namespaces.iter().rev() {
            // Anything still running inside goes first, then the namespace (and its veths).
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn check_detection(lab: &Lab, host: &Host, stun: &str, expect: (&str, &str, &str)) {
    let report = lab.detect(host, stun);
    let got = (
        report["nat_type"].as_str().unwrap_or("?"),
        report["mapping"].as_str().unwrap_or("null"),
        report["filtering"].as_str().unwrap_or("null"),
    );
    assert_eq!(got, expect, "host {} against {stun}: {report}", host.ns);
    assert!(report["public"].as_str().is_some_and(|p| p.starts_with("198.51.100.")), "{report}");
}

#[test]
fn lab_detects_each_nat_kind_against_our_server_and_stund() {
    let Some(mut lab) = Lab::new() else { return };
    let cone = lab.router(Kind::Cone, 1).remove(0);
    let full = lab.router(Kind::FullCone, 1).remove(0);
    let symmetric = lab.router(Kind::Symmetric, 1).remove(0);
    let open = lab.public_host();
    let cases = [
        (&cone, ("Port-Restricted Cone", "endpoint-independent", "address-and-port-dependent")),
        (&full, ("Full Cone", "endpoint-independent", "endpoint-independent")),
        (&symmetric, ("Symmetric", "address-and-port-dependent", "address-and-port-dependent")),
        (&open, ("Open Internet", "endpoint-independent", "endpoint-independent")),
    ];
    for (host, expect) in cases {
        check_detection(&lab, host, P2PCHAT_SERVER, expect);
        check_detection(&lab, host, STUND, expect);
    }
}

/// Waits for a peer to come online.
fn connect(p: &mut Proc, peer: &str, within: Duration) -> Value {
    p.expect(within, "peer_online", |v| v["event"] == "peer_online" && v["peer"] == peer)
}

/// Headless peers "a" and "b" in two hosts, in room "pair", both online (bounded wait); and
/// their key, to start one again.
fn connected_pair(lab: &Lab, (ha, hb): (&Host, &Host), data: &TempDir) -> (Proc, Proc, String) {
    let key = keygen();
    let mut a = lab.peer(ha, "a", "pair", &key, data);
    let mut b = lab.peer(hb, "b", "pair", &key, data);
    connect(&mut a, "b", Duration::from_secs(15));
    connect(&mut b, "a", Duration::from_secs(15));
    (a, b, key)
}

fn exchange(a: &mut Proc, b: &mut Proc, (na, nb): (&str, &str), tag: &str) {
    let (ta, tb) = (format!("{tag}: {na} to {nb}"), format!("{tag}: {nb} to {na}"));
    a.say(&ta);
    b.expect(Duration::from_secs(5), "message", |v| {
        v["event"] == "message" && v["text"] == ta.as_str()
    });
    b.say(&tb);
    a.expect(Duration::from_secs(5), "message", |v| {
        v["event"] == "message" && v["text"] == tb.as_str()
    });
}

/// Every pair of NAT kinds (and the same LAN, and cone routers without a WAN firewall) chats
/// both ways: directly wherever punching can work, through coturn where it cannot.
#[test]
fn lab_connectivity_matrix() {
    let Some(mut lab) = Lab::new() else { return };
    let lan = lab.router(Kind::Cone, 2);
    let host = |lab: &mut Lab, kind: Kind| lab.router(kind, 1).remove(0);
    let (fc1, fc2) = (host(&mut lab, Kind::FullCone), host(&mut lab, Kind::FullCone));
    let (c1, c2, c3) =
        (host(&mut lab, Kind::Cone), host(&mut lab, Kind::Cone), host(&mut lab, Kind::Cone));
    let (s1, s2, s3) = (
        host(&mut lab, Kind::Symmetric),
        host(&mut lab, Kind::Symmetric),
        host(&mut lab, Kind::Symmetric),
    );
    let open1 = lab.router_without_firewall(Kind::Cone, 1).remove(0);
    let open2 = lab.router_without_firewall(Kind::Cone, 1).remove(0);
    let fc3 = host(&mut lab, Kind::FullCone);
    let key = keygen();
    let data = TempDir::new("lab-matrix");
    // (label, a's host, b's host, the path both must end on; "direct" where either direct
    // kind is right).
    let pairs = [
        ("same LAN", &lan[0], &lan[1], "direct LAN"),
        ("fullcone×fullcone", &fc1, &fc2, "direct public"),
        ("fullcone×cone", &fc3, &c1, "direct public"),
        ("fullcone×symmetric", &fc2, &s1, "direct"),
        ("cone×cone", &lan[0], &c2, "direct public"),
        ("cone×symmetric", &c3, &s2, "relay"),
        ("symmetric×symmetric", &s1, &s3, "relay"),
        // Routers that answer early probes (see `router_without_firewall`): still direct.
        ("cone×cone, no WAN firewall", &open1, &open2, "direct public"),
    ];
    let mut peers = Vec::new();
    for (i, (label, ha, hb, _)) in pairs.iter().enumerate() {
        let room = format!("m{i}");
        peers.push((
            lab.peer(ha, "a", &room, &key, &data),
            lab.peer(hb, "b", &room, &key, &data),
            *label,
        ));
    }
    let started = Instant::now();
    for ((a, b, label), (_, _, _, path)) in peers.iter_mut().zip(pairs.iter()) {
        let online_a = connect(a, "b", Duration::from_secs(20));
        let online_b = connect(b, "a", Duration::from_secs(20));
        // From process start (all peers launched together) to both online: an upper bound.
        let took = started.elapsed();
        eprintln!(
            "{label}: both online ≤ {:.2} s after start, paths {} / {}",
            took.as_secs_f64(),
            online_a["path"],
            online_b["path"]
        );
        if *path == "direct" {
            assert_ne!(online_a["path"], "relay", "{label}: punching works here");
        } else {
            assert_eq!(online_a["path"], *path, "{label}: {online_a}");
            assert_eq!(online_b["path"], *path, "{label}: {online_b}");
        }
        exchange(a, b, ("a", "b"), label);
    }
}

#[test]
fn lab_chat_recovers_after_the_nat_forgets_everything() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    let data = TempDir::new("lab-recovery");
    let (mut a, mut b, _) = connected_pair(&lab, (&ha, &hb), &data);
    exchange(&mut a, &mut b, ("a", "b"), "before");
    for router in [&ha, &hb].iter().filter_map(|h| h.router.as_ref()) {
        lab.flush_conntrack(router);
    }
    let flushed = Instant::now();
    // Keep talking until both directions work again: the chat must repair the path itself.
    let mut round = 0;
    loop {
        assert!(flushed.elapsed() < Duration::from_secs(60), "no recovery within 60 s");
        round += 1;
        let (ta, tb) = (format!("after {round} a"), format!("after {round} b"));
        a.say(&ta);
        b.say(&tb);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut got = (false, false);
        while Instant::now() < deadline && !(got.0 && got.1) {
            let left = Duration::from_millis(100);
            if let Some(line) = b.line(left) {
                got.0 |= line.contains(&format!("\"text\":\"{ta}\""));
            }
            if let Some(line) = a.line(left) {
                got.1 |= line.contains(&format!("\"text\":\"{tb}\""));
            }
        }
        if got.0 && got.1 {
            eprintln!("recovered {:.1} s after the NAT flush", flushed.elapsed().as_secs_f64());
            return;
        }
    }
}

#[test]
fn lab_punching_gets_through_loss() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    for router in [&ha, &hb].iter().filter_map(|h| h.router.as_ref()) {
        lab.lossy(router, 20);
    }
    let data = TempDir::new("lab-loss");
    connected_pair(&lab, (&ha, &hb), &data);
}

#[test]
fn lab_two_cone_hosts_chat_in_the_full_screen_interface() {
    if !Tmux::available() {
        return skip_or_fail("tmux is not installed");
    }
    let Some(mut lab) = Lab::new() else { return };
    let ha = lab.router(Kind::Cone, 1).remove(0);
    let hb = lab.router(Kind::Cone, 1).remove(0);
    let key = keygen();
    let data = TempDir::new("lab-tui");
    let screen = |host: &Host, name: &str| {
        let dir = data.path().join(name);
        let command = format!(
            "ip netns exec {} env P2PCHAT_KEY={key} P2PCHAT_CONFIG=/dev/null {} chat \\
             --name {name} --server {P2PCHAT_SERVER} --room tui --data-dir {}",
            host.ns,
            env!("CARGO_BIN_EXE_p2pchat"),
            dir.display()
        );
        Tmux::start(&format!("lab-{name}-{}", host.ns), &command)
    };
    let (alice, bob) = (screen(&ha, "alice"), screen(&hb, "bob"));
    alice.wait_for("● bob online", Duration::from_secs(15));
    let seen = bob.wait_for("● alice online", Duration::from_secs(15));
    assert!(seen.contains("direct public"), "{seen}");
    bob.wait_for("Port-Restricted Cone", Duration::from_secs(15));
    alice.type_line("hello through two NATs");
    bob.wait_for("alice: hello through two NATs", Duration::from_secs(5));
    bob.type_line("loud and clear");
    alice.wait_for("bob: loud and clear", Duration::from_secs(5));
}

/// Reads `a`'s events until `count` messages arrived; returns their texts in arrival order.
fn collect_messages(p: &mut Proc, count: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut texts = Vec::new();
    while texts.len() < count {
        let left = deadline.checked_duration_since(Instant::now());
        let Some(line) = left.and_then(|left| p.line(left)) else {
            panic!("only {} of {count} messages within {within:?}", texts.len());
        };
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["event"] == "message"
        {
            texts.push(v["text"].as_str().unwrap_or_default().to_owned());
        }
    }
    texts
}

#[test]
fn lab_500_messages_each_way_through_20_percent_loss() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    let data = TempDir::new("lab-500");
    let (mut a, mut b, _) = connected_pair(&lab, (&ha, &hb), &data);
    for router in [&ha, &hb].iter().filter_map(|h| h.router.as_ref()) {
        lab.lossy(router, 20);
    }
    let started = Instant::now();
    let expected: Vec<String> = (0..500).map(|i| format!("msg {i}")).collect();
    for text in &expected {
        a.say(&format!("a {text}"));
        b.say(&format!("b {text}"));
    }
    let at_b = collect_messages(&mut b, 500, Duration::from_secs(120));
    let at_a = collect_messages(&mut a, 500, Duration::from_secs(120));
    let want = |who: &str| expected.iter().map(|t| format!("{who} {t}")).collect::<Vec<_>>();
    assert_eq!(at_b, want("a"), "exactly once, in order");
    assert_eq!(at_a, want("b"), "exactly once, in order");
    eprintln!("500 each way through 20% loss: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn lab_killed_peer_comes_back_and_gets_what_was_queued() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    let data = TempDir::new("lab-restart");
    let (mut a, mut b, key) = connected_pair(&lab, (&ha, &hb), &data);
    b.kill();
    a.expect(Duration::from_secs(25), "offline", |v| v["event"] == "peer_offline");
    for i in 0..10 {
        a.say(&format!("queued {i}"));
    }
    let mut b = lab.peer(&hb, "b", "pair", &key, &data);
    let restarted = Instant::now();
    let got = collect_messages(&mut b, 10, Duration::from_secs(30));
    let want: Vec<String> = (0..10).map(|i| format!("queued {i}")).collect();
    assert_eq!(got, want);
    eprintln!(
        "queued messages arrived {:.2} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
}

#[test]
fn lab_a_30_second_outage_loses_nothing() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    let data = TempDir::new("lab-outage");
    let (mut a, mut b, _) = connected_pair(&lab, (&ha, &hb), &data);
    let routers: Vec<&String> = [&ha, &hb].iter().filter_map(|h| h.router.as_ref()).collect();
    for router in &routers {
        lab.outage(router, true);
    }
    let cut = Instant::now();
    let mut i = 0;
    while cut.elapsed() < Duration::from_secs(30) {
        a.say(&format!("a during {i}"));
        b.say(&format!("b during {i}"));
        i += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    for router in &routers {
        lab.outage(router, false);
    }
    let restored = Instant::now();
    let at_b = collect_messages(&mut b, i, Duration::from_secs(60));
    let at_a = collect_messages(&mut a, i, Duration::from_secs(60));
    assert_eq!(at_b, (0..i).map(|n| format!("a during {n}")).collect::<Vec<_>>());
    assert_eq!(at_a, (0..i).map(|n| format!("b during {n}")).collect::<Vec<_>>());
    eprintln!(
        "{i} messages each way typed during a 30 s outage, all in {:.1} s after it",
        restored.elapsed().as_secs_f64()
    );
}

#[test]
fn lab_pairing_by_code_across_two_nats_then_a_restart_by_name() {
    pairing_then_restart(Kind::Cone, "direct public");
}

#[test]
fn lab_pairing_by_code_across_two_symmetric_nats_through_the_relay_then_a_restart_by_name() {
    pairing_then_restart(Kind::Symmetric, "relay");
}

fn pairing_then_restart(kind: Kind, path: &str) {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(kind, 1).remove(0), lab.router(kind, 1).remove(0));
    let (home_a, home_b) = (TempDir::new("lab-pair-a"), TempDir::new("lab-pair-b"));
    let within = Duration::from_secs(20);
    let mut a = lab.person(&ha, "a", None, home_a.path());
    let code =
        a.expect(within, "code", |v| v["event"] == "code")["code"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let mut b = lab.person(&hb, "b", Some(&code), home_b.path());
    for (p, peer) in [(&mut a, "b"), (&mut b, "a")] {
        p.expect(within, "keys", |v| v["event"] == "keys_agreed" && v["peer"] == peer);
        let online = connect(p, peer, within);
        assert_eq!(online["path"], path, "{online}");
    }
    eprintln!(
        "paired and online across two NATs {:.2} s after the code was typed",
        started.elapsed().as_secs_f64()
    );
    exchange(&mut a, &mut b, ("a", "b"), "paired");
    b.kill();
    let mut b = lab.person(&hb, "b", Some("a"), home_b.path());
    let restarted = Instant::now();
    b.expect(within, "keys", |v| v["event"] == "keys_agreed");
    a.expect(within, "renewed", |v| v["event"] == "keys_renewed");
    let online = connect(&mut b, "a", within);
    assert_eq!(online["path"], path, "{online}");
    eprintln!(
        "keyed again and online {:.2} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    exchange(&mut a, &mut b, ("a", "b"), "after the restart");
}

/// What a peer printed while being read: its messages' texts and the paths it moved to.
#[derive(Default)]
struct Seen {
    texts: Vec<String>,
    paths: Vec<String>,
    /// When the last path was seen.
    moved_at: Option<Instant>,
}

/// Reads `p`'s lines for `span`, recording messages and paths.
fn watch(p: &mut Proc, seen: &mut Seen, span: Duration) {
    let until = Instant::now() + span;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        let Some(line) = p.line(left.min(Duration::from_millis(50))) else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
        match v["event"].as_str() {
            Some("message") => seen.texts.push(v["text"].as_str().unwrap_or_default().to_owned()),
            Some("peer_online" | "path_changed") => {
                seen.paths.push(v["path"].as_str().unwrap_or_default().to_owned());
                seen.moved_at = Some(Instant::now());
            }
            _ => {}
        }
    }
}

/// Two cone hosts whose direct path is cut before they start: they meet through the relay,
/// move to the direct path when it is restored, and back to the relay when it is cut again —
/// while both type all along, and every message arrives exactly once, in order.
#[test]
fn lab_relay_to_direct_and_back_loses_and_repeats_nothing() {
    let Some(mut lab) = Lab::new() else { return };
    let (ha, hb) = (lab.router(Kind::Cone, 1).remove(0), lab.router(Kind::Cone, 1).remove(0));
    lab.cut_direct(&ha, &hb, true);
    let data = TempDir::new("lab-switch");
    let (mut a, mut b, _) = connected_pair(&lab, (&ha, &hb), &data);
    let (mut at_a, mut at_b) = (Seen::default(), Seen::default());
    let online = a.seen.iter().rev().find(|l| l.contains("peer_online")).unwrap();
    let online: Value = serde_json::from_str(online).unwrap();
    assert_eq!(online["path"], "relay", "met through the relay: {online}");
    at_a.paths.push("relay".to_owned());
    let mut sent = 0;
    let mut talk = |a: &mut Proc, b: &mut Proc, at_a: &mut Seen, at_b: &mut Seen, secs: u64| {
        for _ in 0..secs * 5 {
            a.say(&format!("a {sent}"));
            b.say(&format!("b {sent}"));
            sent += 1;
            watch(a, at_a, Duration::from_millis(100));
            watch(b, at_b, Duration::from_millis(100));
        }
    };
    talk(&mut a, &mut b, &mut at_a, &mut at_b, 2);
    lab.cut_direct(&ha, &hb, false);
    let restored = Instant::now();
    talk(&mut a, &mut b, &mut at_a, &mut at_b, 8);
    let direct = |seen: &Seen| seen.paths.last().is_some_and(|p| p == "direct public");
    assert!(direct(&at_a) && direct(&at_b), "direct again: {:?} / {:?}", at_a.paths, at_b.paths);
    let took = |seen: &Seen, since: Instant| {
        seen.moved_at.map_or(f64::NAN, |at| at.duration_since(since).as_secs_f64())
    };
    eprintln!(
        "relay → direct {:.1} s (a) / {:.1} s (b) after the direct path's return",
        took(&at_a, restored),
        took(&at_b, restored)
    );
    lab.cut_direct(&ha, &hb, true);
    let cut = Instant::now();
    talk(&mut a, &mut b, &mut at_a, &mut at_b, 16);
    let relayed = |seen: &Seen| seen.paths.last().is_some_and(|p| p == "relay");
    assert!(relayed(&at_a) && relayed(&at_b), "relayed again: {:?} / {:?}", at_a.paths, at_b.paths);
    eprintln!(
        "direct → relay {:.1} s (a) / {:.1} s (b) after the cut",
        took(&at_a, cut),
        took(&at_b, cut)
    );
    watch(&mut a, &mut at_a, Duration::from_secs(5));
    watch(&mut b, &mut at_b, Duration::from_secs(5));
    let want = |who: &str| (0..sent).map(|i| format!("{who} {i}")).collect::<Vec<_>>();
    assert_eq!(at_b.texts, want("a"), "exactly once, in order");
    assert_eq!(at_a.texts, want("b"), "exactly once, in order");
    assert!(
        !a.seen.iter().chain(&b.seen).any(|l| l.contains("\"peer_offline\"")),
        "the switches never showed the peer offline"
    );
    eprintln!("{sent} messages each way across two path switches; paths {:?}", at_a.paths);
}

/// coturn restarts under a relayed chat: the chat notices, allocates again and goes on.
#[test]
fn lab_a_relayed_chat_recovers_when_coturn_restarts() {
    let Some(mut lab) = Lab::new() else { return };
    let ha = lab.router(Kind::Symmetric, 1).remove(0);
    let hb = lab.router(Kind::Symmetric, 1).remove(0);
    let data = TempDir::new("lab-coturn-restart");
    let (mut a, mut b, _) = connected_pair(&lab, (&ha, &hb), &data);
    exchange(&mut a, &mut b, ("a", "b"), "before");
    lab.stop_coturn();
    lab.start_coturn();
    let restarted = Instant::now();
    let mut round = 0;
    loop {
        assert!(restarted.elapsed() < Duration::from_secs(60), "no recovery within 60 s");
        round += 1;
        let (ta, tb) = (format!("after {round} a"), format!("after {round} b"));
        a.say(&ta);
        b.say(&tb);
        let (mut at_a, mut at_b) = (Seen::default(), Seen::default());
        watch(&mut b, &mut at_b, Duration::from_millis(1500));
        watch(&mut a, &mut at_a, Duration::from_millis(1500));
        if at_b.texts.contains(&ta) && at_a.texts.contains(&tb) {
            eprintln!(
                "recovered {:.1} s after coturn restarted",
                restarted.elapsed().as_secs_f64()
            );
            return;
        }
    }
}

/// The race of `router_without_firewall`, run many times: cone pairs behind routers that answer
/// early probes must still punch straight through, every time, never falling back to the relay.
#[test]
fn lab_cone_pairs_behind_routers_without_a_firewall_punch_directly_every_time() {
    const PAIRS: usize = 20;
    let Some(mut lab) = Lab::new() else { return };
    let key = keygen();
    let data = TempDir::new("lab-race");
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let ha = lab.router_without_firewall(Kind::Cone, 1).remove(0);
        let hb = lab.router_without_firewall(Kind::Cone, 1).remove(0);
        let room = format!("race{i}");
        let (a, b) =
            (lab.peer(&ha, "a", &room, &key, &data), lab.peer(&hb, "b", &room, &key, &data));
        pairs.push((a, b, ha, hb));
    }
    let started = Instant::now();
    let mut paths = Vec::new();
    for (a, b, ha, hb) in &mut pairs {
        let online_a = connect(a, "b", Duration::from_secs(20));
        let online_b = connect(b, "a", Duration::from_secs(20));
        paths.push((online_a["path"].to_string(), online_b["path"].to_string()));
        if online_a["path"] == "relay" {
            // What the routers hold explains a lost race: print it with the failure.
            for h in [&*ha, &*hb] {
                let out = Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        h.router.as_ref().unwrap(),
                        "conntrack",
                        "-L",
                        "-p",
                        "udp",
                    ])
                    .output()
                    .unwrap();
                eprintln!(
                    "conntrack of router {} (host {}) for a pair that relayed:\n{}",
                    h.public,
                    h.ip,
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
    eprintln!(
        "{PAIRS} pairs online within {:.2} s; paths: {paths:?}",
        started.elapsed().as_secs_f64()
    );
    let direct = paths.iter().filter(|(a, b)| !a.contains("relay") && !b.contains("relay")).count();
    assert_eq!(direct, PAIRS, "every pair direct: {paths:?}");
}
