//! base64url decoding and a big-endian bit reader: the two primitives every binary consent
//! format (TCF, GPP sections) is built on.
//!
//! Decoding never trusts a length that the data claims: the reader only answers "are there `n`
//! more bits?", and callers ask that before they allocate anything sized by a decoded field.

use super::ConsentError;

/// Marks a byte that is not in the base64url alphabet (high bits set so one `|` catches it).
const INVALID: u8 = 0xFF;

/// Reverse lookup for the base64url alphabet (`A-Z a-z 0-9 - _`).
static DECODE: [u8; 256] = build_decode_table();

const fn build_decode_table() -> [u8; 256] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
}

/// Zero bytes appended after the decoded data so a reader can always load a whole `u64`.
const TAIL_PADDING: usize = 8;

/// The bits of one decoded base64url segment.
#[derive(Debug)]
pub(crate) struct BitBuf {
    bytes: Vec<u8>,
    bit_len: usize,
}

impl BitBuf {
    /// Number of meaningful bits (6 per input character).
    pub(crate) fn bit_len(&self) -> usize {
        self.bit_len
    }

    /// A reader positioned at the first bit.
    pub(crate) fn reader(&self) -> BitReader<'_> {
        BitReader {
            bytes: &self.bytes,
            pos: 0,
            len: self.bit_len,
        }
    }
}

/// Decodes one base64url segment (no `.`/`~` separators) into bits.
///
/// Trailing `=` padding is tolerated; any other character outside the alphabet is an error.
/// Non-zero trailing bits are accepted, as the IAB reference libraries do.
pub(crate) fn decode_base64url(segment: &str) -> Result<BitBuf, ConsentError> {
    let chars = segment.trim_end_matches('=').as_bytes();
    let bit_len = chars.len() * 6;
    let mut bytes = Vec::with_capacity(bit_len / 8 + 1 + TAIL_PADDING);
    let mut chunks = chars.chunks_exact(4);
    let mut offset = 0;
    for chunk in &mut chunks {
        let a = DECODE[usize::from(chunk[0])];
        let b = DECODE[usize::from(chunk[1])];
        let c = DECODE[usize::from(chunk[2])];
        let d = DECODE[usize::from(chunk[3])];
        if (a | b | c | d) & 0xC0 != 0 {
            return Err(invalid_char(chunk, offset));
        }
        let v = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        bytes.extend_from_slice(&[(v >> 16) as u8, (v >> 8) as u8, v as u8]);
        offset += 4;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut acc: u32 = 0;
        for &ch in rest {
            let v = DECODE[usize::from(ch)];
            if v & 0xC0 != 0 {
                return Err(invalid_char(rest, offset));
            }
            acc = acc << 6 | u32::from(v);
        }
        // Left-align the 6/12/18 bits into a 24-bit group and keep the bytes they touch.
        acc <<= 6 * (4 - rest.len());
        let group = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        bytes.extend_from_slice(&group[..(rest.len() * 6).div_ceil(8)]);
    }
    bytes.extend_from_slice(&[0; TAIL_PADDING]);
    Ok(BitBuf { bytes, bit_len })
}

fn invalid_char(chunk: &[u8], base: usize) -> ConsentError {
    let at = chunk
        .iter()
        .position(|&c| DECODE[usize::from(c)] & 0xC0 != 0)
        .unwrap_or(0);
    ConsentError::InvalidBase64 { offset: base + at }
}

/// Reads big-endian bit fields out of a [`BitBuf`].
#[derive(Clone, Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    len: usize,
}

impl BitReader<'_> {
    /// Bits not yet read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// Reads an `n`-bit unsigned field (`n <= 56`), or reports which field was truncated.
    #[inline]
    pub(crate) fn read(&mut self, n: u32, field: &'static str) -> Result<u64, ConsentError> {
        debug_assert!(n <= 56);
        if n == 0 {
            return Ok(0);
        }
        if self.remaining() < n as usize {
            return Err(ConsentError::Truncated { field });
        }
        let byte = self.pos >> 3;
        let window: [u8; 8] = self
            .bytes
            .get(byte..byte + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or(ConsentError::Truncated { field })?;
        let word = u64::from_be_bytes(window) << (self.pos & 7);
        self.pos += n as usize;
        Ok(word >> (64 - n))
    }

    /// Reads one bit as a boolean.
    #[inline]
    pub(crate) fn read_bool(&mut self, field: &'static str) -> Result<bool, ConsentError> {
        Ok(self.read(1, field)? == 1)
    }

    /// Reads a 6-bit-per-letter two-letter code (`A` = 0), e.g. a language or country code.
    pub(crate) fn read_letters(&mut self, field: &'static str) -> Result<[u8; 2], ConsentError> {
        let v = self.read(12, field)?;
        // Values above 25 are not letters; map them anyway so decoding stays total, as the
        // reference libraries do.
        Ok([b'A' + ((v >> 6) as u8 & 0x3F), b'A' + (v as u8 & 0x3F)])
    }

    /// Reads a Fibonacci-coded positive integer (terminated by `11`), capped at `u16::MAX`.
    pub(crate) fn read_fibonacci(&mut self, field: &'static str) -> Result<u16, ConsentError> {
        // F(2)..F(24); a code longer than this cannot fit a u16 and is hostile.
        const FIB: [u32; 23] = [
            1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765,
            10946, 17711, 28657, 46368,
        ];
        let mut total: u32 = 0;
        let mut last = false;
        for (i, &f) in FIB.iter().enumerate() {
            let bit = self.read_bool(field)?;
            if bit && last {
                return u16::try_from(total).map_err(|_| ConsentError::InvalidFibonacci { field });
            }
            if bit {
                total += f;
            }
            last = bit;
            if i + 1 == FIB.len() {
                // The terminator must follow the last representable digit.
                if self.read_bool(field)? && last {
                    return u16::try_from(total)
                        .map_err(|_| ConsentError::InvalidFibonacci { field });
                }
            }
        }
        Err(ConsentError::InvalidFibonacci { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_bytes() {
        // "AQID" is base64 for [1, 2, 3].
        let buf = decode_base64url("AQID").expect("valid");
        let mut r = buf.reader();
        assert_eq!(r.read(8, "a").expect("a"), 1);
        assert_eq!(r.read(8, "b").expect("b"), 2);
        assert_eq!(r.read(8, "c").expect("c"), 3);
        assert!(r.read(1, "d").is_err());
    }

    #[test]
    fn partial_group_keeps_six_bits_per_char() {
        let buf = decode_base64url("B_").expect("valid");
        assert_eq!(buf.bit_len(), 12);
        let mut r = buf.reader();
        assert_eq!(r.read(6, "a").expect("a"), 1);
        assert_eq!(r.read(6, "b").expect("b"), 63);
    }

    #[test]
    fn rejects_foreign_characters_with_offset() {
        assert_eq!(
            decode_base64url("AAAA!A").err(),
            Some(ConsentError::InvalidBase64 { offset: 4 })
        );
        assert!(decode_base64url("AA+A").is_err());
    }

    #[test]
    fn fibonacci_codes() {
        // 011 -> 2, 1011 -> 4 (1 + 3), 11 -> 1
        let buf = decode_base64url("bA").expect("valid"); // 011011 000000
        let mut r = buf.reader();
        assert_eq!(r.read_fibonacci("f").expect("f"), 2);
        assert_eq!(r.read_fibonacci("f").expect("f"), 2);
    }

    #[test]
    fn endless_fibonacci_fails() {
        let buf = decode_base64url("VVVVVVVV").expect("valid"); // 0101... never "11"
        assert!(buf.reader().read_fibonacci("f").is_err());
    }
}
