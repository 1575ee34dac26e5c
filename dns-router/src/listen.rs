//! Binding the sockets `run` serves, before it starts (so tests bind port 0 and read the ports
//! back). Per `dns.listen` address: `dns.udp_threads` UDP sockets with SO_REUSEPORT (one per
//! thread; the first picks the port when it is 0, the others join it), then a TCP listener on
//! the same port (with port 0, retried with a new UDP port on conflict). Each bound socket is
//! logged as `listening proto=<udp|tcp> name=dns addr=<ip:port>` (extra SO_REUSEPORT sockets
//! are not logged again).

use std::net::{SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use cdn_shared::config::router::RouterConfig;
use cdn_shared::telemetry::{listening, Proto};

use crate::error::RouterError;

/// The DNS sockets of one listen address.
#[derive(Debug)]
pub struct DnsSockets {
    /// UDP sockets sharing the port (SO_REUSEPORT), one per UDP thread.
    pub udp: Vec<UdpSocket>,
    /// The TCP listener on the same port.
    pub tcp: TcpListener,
}

impl DnsSockets {
    /// The UDP address (the TCP listener has the same one).
    pub fn addr(&self) -> SocketAddr {
        self.udp[0]
            .local_addr()
            .expect("bound socket has an address")
    }
}

/// Everything `run` serves on.
#[derive(Debug)]
pub struct Sockets {
    /// DNS sockets, one entry per `dns.listen` address.
    pub dns: Vec<DnsSockets>,
    /// The admin API listener (`admin.listen`).
    pub admin: TcpListener,
}

/// UDP sockets per listen address: `dns.udp_threads`, or one per CPU when 0.
pub fn udp_threads(config: &RouterConfig) -> usize {
    match config.dns.udp_threads {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// Largest `dns.udp_payload_size` with which IPv4 answers are sent with DF set: 1232 bytes of
/// DNS plus 28 of headers fit every link's MTU (RFC 9715's fragment-free size).
pub const DF_PAYLOAD_MAX: u16 = 1232;

fn udp_socket(addr: SocketAddr, set_df: bool) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    } else if set_df {
        // IPv4 answers never fragmented (RFC 9715; BIND sets DF too): DF set, and the path
        // MTU that spoofed ICMP could lower ignored (IP_PMTUDISC_PROBE). A DF datagram carries
        // IP ID 0 (RFC 6864), which spares the kernel its per-packet ID hash.
        rustix::net::sockopt::set_ip_mtu_discover(
            &s,
            rustix::net::sockopt::Ipv4PathMtuDiscovery::PROBE,
        )?;
    }
    s.set_reuse_port(true)?;
    // Room for bursts while the thread is busy; the kernel caps it at rmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

fn bind_dns(addr: SocketAddr, threads: usize, set_df: bool) -> Result<DnsSockets, RouterError> {
    let attempts = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first =
            udp_socket(addr, set_df).map_err(|e| RouterError::io(format!("bind udp {addr}"), e))?;
        let bound = first
            .local_addr()
            .map_err(|e| RouterError::io(format!("bind udp {addr}"), e))?;
        match tcp_listener(bound) {
            Ok(tcp) => {
                let mut udp = vec![first];
                for _ in 1..threads {
                    udp.push(
                        udp_socket(bound, set_df)
                            .map_err(|e| RouterError::io(format!("bind udp {bound}"), e))?,
                    );
                }
                return Ok(DnsSockets { udp, tcp });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(RouterError::io(
        format!("bind tcp {addr}"),
        last.unwrap_or_else(|| std::io::Error::other("no attempt")),
    ))
}

/// Bind every socket of `config` and log the `listening` lines.
pub fn bind(config: &RouterConfig) -> Result<Sockets, RouterError> {
    let threads = udp_threads(config);
    let set_df = config.dns.udp_payload_size <= DF_PAYLOAD_MAX;
    let mut dns = Vec::new();
    for &addr in &config.dns.listen {
        let s = bind_dns(addr, threads, set_df)?;
        listening(Proto::Udp, "dns", s.addr());
        let tcp_addr = s
            .tcp
            .local_addr()
            .map_err(|e| RouterError::io("tcp address", e))?;
        listening(Proto::Tcp, "dns", tcp_addr);
        dns.push(s);
    }
    let admin = TcpListener::bind(config.admin.listen)
        .map_err(|e| RouterError::io(format!("bind admin {}", config.admin.listen), e))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| RouterError::io("admin address", e))?;
    listening(Proto::Http, "admin", admin_addr);
    Ok(Sockets { dns, admin })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::sockopt::{ip_mtu_discover, Ipv4PathMtuDiscovery};

    #[test]
    fn ipv4_answers_are_sent_with_df_when_asked() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let s = udp_socket(addr, true).unwrap();
        assert_eq!(ip_mtu_discover(&s).unwrap(), Ipv4PathMtuDiscovery::PROBE);
        let s = udp_socket(addr, false).unwrap();
        assert_ne!(ip_mtu_discover(&s).unwrap(), Ipv4PathMtuDiscovery::PROBE);
    }
}
