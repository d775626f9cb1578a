// SPDX-License-Identifier: GPL-2.0

//! Big-endian cursor and builder for OpenFlow structures, and the error a
//! decoder returns: the OpenFlow error type and code the switch answers
//! with.

use super::consts::err;

/// Why a message cannot be accepted, as the OpenFlow error the switch
/// sends back (`ofp_error_msg` type and code).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfError {
    /// `OFPET_*`.
    pub kind: u16,
    /// The type's `OFP*C_*` code.
    pub code: u16,
}

impl OfError {
    /// An error of `kind` with `code`.
    pub const fn new(kind: u16, code: u16) -> Self {
        Self { kind, code }
    }

    /// `OFPET_BAD_REQUEST`/`OFPBRC_BAD_LEN`: a structure's length is wrong.
    pub const fn bad_len() -> Self {
        Self::new(err::BAD_REQUEST, err::request::BAD_LEN)
    }
}

impl std::fmt::Display for OfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpenFlow error type {} code {}", self.kind, self.code)
    }
}

impl std::error::Error for OfError {}

/// A read cursor over a received structure. Reading past the end is the
/// error given at construction, so each structure reports its own
/// `BAD_LEN` flavour.
pub struct Reader<'a> {
    buf: &'a [u8],
    short: OfError,
}

impl<'a> Reader<'a> {
    /// A cursor over `buf`; a short read is `short`.
    pub fn new(buf: &'a [u8], short: OfError) -> Self {
        Self { buf, short }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], OfError> {
        if n > self.buf.len() {
            return Err(self.short);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], OfError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Skips `n` bytes of padding.
    pub fn skip(&mut self, n: usize) -> Result<(), OfError> {
        self.bytes(n).map(|_| ())
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    pub fn u8(&mut self) -> Result<u8, OfError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, OfError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, OfError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, OfError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A sub-structure of the next `len` bytes, whose short reads are
    /// `short`.
    /// A `len` beyond what is left is `short` too: the sub-structure's own
    /// length is what is wrong.
    pub fn sub(&mut self, len: usize, short: OfError) -> Result<Reader<'a>, OfError> {
        if len > self.buf.len() {
            return Err(short);
        }
        Ok(Reader::new(self.bytes(len)?, short))
    }

    /// A NUL-terminated string field of `n` bytes. Its last byte is the
    /// terminator whatever it holds: a peer that filled it gets its name
    /// cut, as the switch would write it back.
    pub fn string(&mut self, n: usize) -> Result<String, OfError> {
        let raw = self.bytes(n)?;
        let raw = &raw[..n.saturating_sub(1)];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }
}

/// Builds a structure in network byte order.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    /// `s` NUL-padded (and cut, at a character boundary) to `n` bytes,
    /// the last always NUL.
    pub fn string(&mut self, s: &str, n: usize) -> &mut Self {
        let mut take = s.len().min(n.saturating_sub(1));
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes(&s.as_bytes()[..take]).zeros(n - take)
    }

    /// Pads to a multiple of 8 bytes.
    pub fn pad8(&mut self) -> &mut Self {
        let n = self.buf.len().next_multiple_of(8) - self.buf.len();
        self.zeros(n)
    }

    /// Writes the 16-bit length of what was written since `start` at
    /// `at`. Structures are bounded by the 64 KiB of a message, so the
    /// cast cannot truncate a valid message; longer is refused on send.
    pub fn patch_len(&mut self, at: usize, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }
}
