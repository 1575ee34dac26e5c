//! A small DNS client for tests: one query over UDP or TCP (RFC 7766 length-prefixed), with
//! optional EDNS and Client Subnet (RFC 7871), returning the parsed hickory `Message`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};

pub use hickory_proto;

/// One question, with the options a test may want.
#[derive(Debug, Clone)]
pub struct DnsQuery {
    /// Query name.
    pub name: String,
    /// Query type.
    pub rtype: RecordType,
    /// EDNS Client Subnet (address, source prefix length); implies EDNS.
    pub ecs: Option<(IpAddr, u8)>,
    /// Send an OPT record (EDNS0).
    pub edns: bool,
    /// Advertised UDP payload size when EDNS is on.
    pub payload: u16,
    /// Receive timeout.
    pub timeout: Duration,
}

impl DnsQuery {
    /// `name` `rtype`, EDNS on with a 1232-byte payload, no ECS, 2 s timeout.
    pub fn new(name: &str, rtype: RecordType) -> Self {
        Self {
            name: name.to_string(),
            rtype,
            ecs: None,
            edns: true,
            payload: 1232,
            timeout: Duration::from_secs(2),
        }
    }

    /// Add ECS from a `"8.8.8.0/24"`-style subnet.
    pub fn subnet(mut self, cidr: &str) -> Self {
        let (ip, len) = cidr.split_once('/').unwrap_or((cidr, ""));
        let ip: IpAddr = ip.parse().expect("subnet address");
        let default_len = if ip.is_ipv4() { 32 } else { 128 };
        let len = len.parse().unwrap_or(default_len);
        self.ecs = Some((ip, len));
        self.edns = true;
        self
    }

    /// Send without EDNS (plain RFC 1035, 512-byte UDP limit).
    pub fn no_edns(mut self) -> Self {
        self.edns = false;
        self.ecs = None;
        self
    }

    /// Set the receive timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The query message.
    pub fn message(&self) -> anyhow::Result<Message> {
        let name = Name::from_ascii(&self.name)
            .with_context(|| format!("bad query name `{}`", self.name))?;
        let mut m = Message::query();
        m.add_query(Query::query(name, self.rtype));
        m.metadata.recursion_desired = false;
        if self.edns {
            let mut e = Edns::new();
            e.set_max_payload(self.payload);
            if let Some((ip, len)) = self.ecs {
                e.options_mut()
                    .insert(EdnsOption::Subnet(ClientSubnet::new(ip, len, 0)));
            }
            m.set_edns(e);
        }
        Ok(m)
    }

    /// Ask `server` over UDP.
    pub fn udp(&self, server: SocketAddr) -> anyhow::Result<Message> {
        let q = self.message()?;
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::LOCALHOST, 0).into()
        } else {
            (Ipv6Addr::LOCALHOST, 0).into()
        };
        let sock = UdpSocket::bind(bind)?;
        sock.set_read_timeout(Some(self.timeout))?;
        sock.connect(server)?;
        sock.send(&q.to_vec()?)?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = sock.recv(&mut buf).with_context(|| {
                format!(
                    "no UDP answer from {server} for {} {}",
                    self.name, self.rtype
                )
            })?;
            let m = Message::from_vec(&buf[..n]).context("undecodable UDP answer")?;
            if m.metadata.id == q.metadata.id {
                return Ok(m);
            }
        }
    }

    /// Ask `server` over TCP.
    pub fn tcp(&self, server: SocketAddr) -> anyhow::Result<Message> {
        let q = self.message()?.to_vec()?;
        let mut s = TcpStream::connect_timeout(&server, self.timeout)
            .with_context(|| format!("TCP connect to {server}"))?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let len = u16::try_from(q.len()).context("query too long")?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed)?;
        let mut lenbuf = [0u8; 2];
        s.read_exact(&mut lenbuf).with_context(|| {
            format!(
                "no TCP answer from {server} for {} {}",
                self.name, self.rtype
            )
        })?;
        let mut buf = vec![0u8; u16::from_be_bytes(lenbuf) as usize];
        s.read_exact(&mut buf)?;
        Message::from_vec(&buf).context("undecodable TCP answer")
    }
}

/// A-record addresses in the answer section.
pub fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// AAAA-record addresses in the answer section.
pub fn aaaa_records(m: &Message) -> Vec<Ipv6Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// The TXT strings of the answer section, each record's strings joined.
pub fn txt_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}

/// The ECS option of the answer's OPT record, if any.
pub fn ecs_of(m: &Message) -> Option<ClientSubnet> {
    match m.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(s) => Some(*s),
        _ => None,
    }
}

/// Fail unless the answer's RCODE is `want`.
pub fn expect_rcode(m: &Message, want: ResponseCode) -> anyhow::Result<()> {
    if m.metadata.response_code != want {
        bail!("expected {want}, got {} in {m:?}", m.metadata.response_code);
    }
    Ok(())
}
