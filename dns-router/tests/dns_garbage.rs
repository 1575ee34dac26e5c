//! Bad input never panics or stalls the server: thousands of random and malformed packets,
//! then normal answers still come over UDP and TCP.

mod dns_support;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rand::{Rng, SeedableRng};

use dns_support::*;

fn malformed() -> Vec<Vec<u8>> {
    let q = query("static.cdn.example.test", RecordType::A)
        .to_vec()
        .unwrap();
    let mut v = vec![
        vec![],
        vec![0x12],
        q[..11].to_vec(),          // truncated header
        q[..20].to_vec(),          // truncated question
        q[..q.len() - 2].to_vec(), // truncated class
    ];
    // Label length running past the end.
    let mut p = q[..12].to_vec();
    p.extend_from_slice(&[63, b'a', b'b']);
    v.push(p);
    // Bad label type bits (0x40, 0x80).
    for b in [0x41u8, 0x81] {
        let mut p = q[..12].to_vec();
        p.extend_from_slice(&[b, b'a', 0, 0, 1, 0, 1]);
        v.push(p);
    }
    // Compression loop in the question and in an additional record.
    let mut p = q[..12].to_vec();
    p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    v.push(p);
    let mut p = q.clone();
    p[11] = 1;
    p.extend_from_slice(&[0xc0, (q.len()) as u8, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    v.push(p);
    // Oversized name: 5 × 63-byte labels.
    let mut p = q[..12].to_vec();
    for _ in 0..5 {
        p.push(63);
        p.extend_from_slice(&[b'x'; 63]);
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(p);
    // Counts claiming thousands of records.
    let mut p = q.clone();
    p[6] = 0xff;
    p[7] = 0xff;
    p[10] = 0xff;
    v.push(p);
    // OPT with an option length past the end.
    let mut p = q.clone();
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 8, 0, 200]);
    v.push(p);
    // A response (QR=1): must be ignored.
    let mut p = q.clone();
    p[2] |= 0x80;
    v.push(p);
    v
}

#[test]
fn garbage_burst_then_normal_answers() {
    let (up, _) = healthy_edge();
    let s = Server::start(&config_text(&up, &up, &up));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let fixed = malformed();
    for i in 0..6000 {
        let p: Vec<u8> = if i % 3 == 0 {
            fixed[i % fixed.len()].clone()
        } else if i % 3 == 1 {
            // Random bytes.
            let n = rng.random_range(0..600);
            (0..n).map(|_| rng.random()).collect()
        } else {
            // A valid query with a few random bytes flipped.
            let mut q = with_edns(
                query("www.cdn.example.test", RecordType::A),
                Some("198.51.100.0/24"),
            )
            .to_vec()
            .unwrap();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..q.len());
                q[at] = rng.random();
            }
            q
        };
        let _ = sock.send_to(&p, s.dns);
        if i % 500 == 0 {
            // Let the server's receive buffer drain a little.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The same garbage over TCP, one connection per packet.
    for p in fixed.iter().take(8) {
        if let Ok(mut c) = TcpStream::connect(s.dns) {
            let mut f = (p.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(p);
            let _ = c.write_all(&f);
        }
    }
    // Readable headers get FORMERR, with the id echoed.
    let r = udp_raw(s.dns, &fixed[3]);
    assert_eq!(r[3] & 0x0f, 1);
    assert_eq!(r[..2], fixed[3][..2]);
    let r = udp_raw(s.dns, &fixed[8]);
    assert_eq!(r[3] & 0x0f, 1, "compression pointer in the question");
    // Normal service continues.
    let r = udp(s.dns, &query("static.cdn.example.test", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    let r = tcp(s.dns, &query("www.cdn.example.test", RecordType::A));
    assert_eq!(r.answers.len(), 1);
}
