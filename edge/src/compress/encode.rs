//! The encoders: a whole body in, the encoded body out (the edge compresses a stored identity
//! body once and stores the result, so there is no streaming here). Synchronous and
//! CPU-bound: the caller runs it on actix's blocking pool.

use std::io::Write;

use cdn_shared::config::compress::{Compress, Encoding};

/// Brotli window (log2 bytes): 4 MiB, brotli's default and what browsers expect.
const BROTLI_LGWIN: u32 = 22;

/// Levels for each coding, from the host's `[hosts.compress]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// Brotli quality 0–11.
    pub br: u32,
    /// Zstandard level 1–19.
    pub zstd: i32,
    /// gzip level 1–9.
    pub gzip: u32,
}

impl From<&Compress> for Levels {
    fn from(c: &Compress) -> Levels {
        Levels {
            br: c.br_level,
            zstd: c.zstd_level,
            gzip: c.gzip_level,
        }
    }
}

/// Encode `data` with `enc` at the host's level.
pub fn encode(enc: Encoding, levels: Levels, data: &[u8]) -> std::io::Result<Vec<u8>> {
    // Compressible text usually shrinks to a fifth or less: start there.
    let out = Vec::with_capacity(data.len() / 4 + 64);
    match enc {
        Encoding::Br => {
            let mut w = brotli::CompressorWriter::new(out, 16 * 1024, levels.br, BROTLI_LGWIN);
            w.write_all(data)?;
            w.flush()?;
            Ok(w.into_inner())
        }
        Encoding::Zstd => {
            let mut w = zstd::stream::write::Encoder::new(out, levels.zstd)?;
            w.include_checksum(false)?;
            w.set_pledged_src_size(Some(data.len() as u64))?;
            w.write_all(data)?;
            w.finish()
        }
        Encoding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(out, flate2::Compression::new(levels.gzip));
            w.write_all(data)?;
            w.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(enc: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match enc {
            Encoding::Br => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Encoding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
            Encoding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    #[test]
    fn each_coding_round_trips_and_shrinks_text() {
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\",\"ok\":true}},").into_bytes())
            .collect();
        let levels = Levels::from(&Compress::default());
        for enc in Encoding::ALL {
            let e = encode(enc, levels, &text).unwrap();
            assert!(
                e.len() * 4 < text.len(),
                "{enc:?}: {} → {}",
                text.len(),
                e.len()
            );
            assert_eq!(decode(enc, &e), text, "{enc:?}");
            // Deterministic: a recompression gives the same bytes (the ETag stays right).
            assert_eq!(encode(enc, levels, &text).unwrap(), e);
        }
        for enc in Encoding::ALL {
            assert_eq!(decode(enc, &encode(enc, levels, b"").unwrap()), b"");
        }
    }
}
