//! Compressible bodies for `/text/<size>/<id>` (`text/plain`) and `/json/<size>/<id>`
//! (`application/json`): realistic text (words, sentences, numbers) and a valid JSON array of
//! records, each exactly `size` bytes and a pure function of the object's seed. Sent
//! uncompressed, so an edge with `[hosts.compress]` compresses them.

/// Largest text or JSON body (the whole body is built in memory).
pub const MAX_TEXT_SIZE: u64 = 64 * 1024 * 1024;

const WORDS: &[&str] = &[
    "the",
    "edge",
    "cache",
    "serves",
    "a",
    "request",
    "from",
    "memory",
    "or",
    "disk",
    "when",
    "object",
    "is",
    "fresh",
    "origin",
    "fill",
    "stream",
    "client",
    "router",
    "answers",
    "with",
    "nearest",
    "healthy",
    "region",
    "and",
    "purge",
    "removes",
    "every",
    "variant",
    "of",
    "url",
    "compression",
    "saves",
    "bytes",
    "on",
    "text",
    "json",
    "javascript",
    "for",
    "users",
];

/// splitmix64 step.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `size` bytes of English-like text: sentences of words from a small vocabulary, some
/// numbers, a line break every few sentences.
pub fn text(seed: u64, size: usize) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(size + 16);
    let mut capital = true;
    while out.len() < size {
        let r = next(&mut x);
        let w = WORDS[(r % WORDS.len() as u64) as usize];
        if capital {
            let mut c = w.as_bytes().to_vec();
            c[0] = c[0].to_ascii_uppercase();
            out.extend_from_slice(&c);
            capital = false;
        } else {
            out.extend_from_slice(w.as_bytes());
        }
        match (r >> 32) % 16 {
            0 => {
                out.extend_from_slice(b". ");
                capital = true;
            }
            1 => {
                out.extend_from_slice(b".\n");
                capital = true;
            }
            2 => out.extend_from_slice(format!(" {} ", (r >> 40) % 10_000).as_bytes()),
            3 => out.extend_from_slice(b", "),
            _ => out.push(b' '),
        }
    }
    out.truncate(size);
    out
}

/// `size` bytes of a JSON array of records (`{"id":…,"name":…,"score":…,"tags":[…]}`), padded
/// with spaces before the closing `]` to the exact size; valid JSON from 2 bytes up (smaller
/// sizes are spaces).
pub fn json(seed: u64, size: usize) -> Vec<u8> {
    if size < 2 {
        return vec![b' '; size];
    }
    let mut x = seed;
    let mut out = Vec::with_capacity(size);
    out.push(b'[');
    let mut i = 0u64;
    loop {
        let r = next(&mut x);
        let name = WORDS[(r % WORDS.len() as u64) as usize];
        let tag = WORDS[((r >> 8) % WORDS.len() as u64) as usize];
        let rec = format!(
            "{}{{\"id\":{i},\"name\":\"{name} {}\",\"score\":{},\"active\":{},\"tags\":[\"{tag}\",\"{name}\"]}}",
            if i == 0 { "" } else { "," },
            (r >> 16) % 1000,
            (r >> 24) % 100_000,
            (r >> 40).is_multiple_of(2),
        );
        // Keep room for the closing bracket.
        if out.len() + rec.len() + 1 > size {
            break;
        }
        out.extend_from_slice(rec.as_bytes());
        i += 1;
    }
    out.resize(size - 1, b' ');
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_and_deterministic() {
        for size in [0usize, 1, 2, 3, 50, 1000, 4096, 100_000] {
            assert_eq!(text(7, size).len(), size);
            assert_eq!(json(7, size).len(), size);
            assert_eq!(text(7, size), text(7, size));
            assert_eq!(json(7, size), json(7, size));
        }
        assert_ne!(text(7, 1000), text(8, 1000));
        assert_ne!(json(7, 1000), json(8, 1000));
    }

    #[test]
    fn json_is_valid_and_text_is_text() {
        for size in [2usize, 40, 300, 10_000, 65_536] {
            let v: serde_json::Value = serde_json::from_slice(&json(3, size)).unwrap();
            assert!(v.is_array());
        }
        let t = text(3, 10_000);
        assert!(std::str::from_utf8(&t).is_ok());
        assert!(t.iter().filter(|&&b| b == b' ').count() > 1000);
    }
}
