//! The README's first command: the `fleet` binary starts everything, prints commands that
//! work as printed (nearest-edge answers for three subnets, MISS then HIT through an edge),
//! and stops every process on Ctrl-C. Run here with free ports (`--… 0`) and `--no-build`
//! (the tests already built the binaries).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use cdn_tests::fleet::SERVICE;
use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
use cdn_tests::harness::dns::{self, DnsQuery};
use cdn_tests::harness::{eventually, http, Process, Signal};

/// `dig @IP -p PORT NAME A +subnet=CIDR    # → EDGE` → (server, subnet, expected edge).
fn parse_dig(line: &str) -> Option<(SocketAddr, String, Ipv4Addr)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let ip = words.iter().find_map(|w| w.strip_prefix('@'))?;
    let port = words
        .iter()
        .position(|w| *w == "-p")
        .and_then(|i| words.get(i + 1))?;
    let subnet = words.iter().find_map(|w| w.strip_prefix("+subnet="))?;
    let edge = words.last()?.parse().ok()?;
    Some((
        format!("{ip}:{port}").parse().ok()?,
        subnet.to_string(),
        edge,
    ))
}

/// `curl … --resolve HOST:PORT:IP http://HOST:PORT/PATH …` → (edge address, path).
fn parse_curl(line: &str) -> Option<(SocketAddr, String)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "--resolve")?;
    let mut parts = words.get(i + 1)?.splitn(3, ':');
    let (_host, port, ip) = (parts.next()?, parts.next()?, parts.next()?);
    let url = words.iter().find(|w| w.starts_with("http://"))?;
    let path = &url[url.find("/obj/")?..];
    Some((format!("{ip}:{port}").parse().ok()?, path.to_string()))
}

#[test]
fn the_fleet_binary_prints_a_tour_that_works_and_stops_everything() -> anyhow::Result<()> {
    let args: Vec<String> = [
        "--no-build",
        "--dns",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--origin",
        "127.0.0.1:0",
        "--edge-port",
        "0",
        "--edge-admin-port",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let mut fleet = Process::spawn("fleet", Path::new(env!("CARGO_BIN_EXE_fleet")), &args, &[])?;
    // If the test fails, let the fleet stop its children rather than orphaning them.
    fleet.graceful_drop(Duration::from_secs(10));
    fleet.wait_for_line("Ctrl-C stops everything", Duration::from_secs(60))?;
    let lines = fleet.log_lines();

    let digs: Vec<_> = lines.iter().filter_map(|l| parse_dig(l)).collect();
    assert_eq!(
        digs.len(),
        3,
        "three dig lines with +subnet in:\n{}",
        lines.join("\n")
    );
    for (server, subnet, edge) in &digs {
        let m = DnsQuery::new(SERVICE, RecordType::A)
            .subnet(subnet)
            .udp(*server)?;
        assert_eq!(
            dns::a_records(&m),
            vec![*edge],
            "dig for {subnet} as printed"
        );
    }
    let dns_server = digs[0].0;

    let (edge, path) = lines
        .iter()
        .find_map(|l| parse_curl(l))
        .ok_or_else(|| anyhow::anyhow!("no curl --resolve line in:\n{}", lines.join("\n")))?;
    let first = http::get(edge, &path).host(SERVICE).send()?;
    assert_eq!(first.status, 200);
    assert!(
        !first.is_hit(),
        "first curl: MISS ({:?})",
        first.cache_status()
    );
    eventually("second curl: HIT", Duration::from_secs(5), || {
        let r = http::get(edge, &path).host(SERVICE).send()?;
        anyhow::ensure!(r.is_hit(), "{:?}", r.cache_status());
        Ok(())
    })?;

    fleet.signal(Signal::INT)?;
    let status = fleet.wait_exit(Duration::from_secs(20))?;
    assert!(status.success(), "fleet exits 0 on Ctrl-C: {status}");
    // Every process it started is gone: the router's DNS/TCP port and the edge refuse.
    for addr in [dns_server, edge] {
        eventually(&format!("{addr} closed"), Duration::from_secs(5), || {
            anyhow::ensure!(
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
                "{addr} still accepts connections"
            );
            Ok(())
        })?;
    }
    Ok(())
}
