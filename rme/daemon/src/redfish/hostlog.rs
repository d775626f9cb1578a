// SPDX-License-Identifier: GPL-2.0

//! The server's serial console as a Redfish LogService, "HostLogger" as
//! OpenBMC's bmcweb names the same service: the console's last
//! [`MAX_RECORDS`] complete lines, each a LogEntry whose Id is its line
//! number since the console began, so an entry keeps its Id while the
//! console grows. The lines are read from the platform's `console` and
//! kept here, so each request reads only what is new.

use std::collections::VecDeque;

/// The most lines kept (the LogService's `MaxNumberOfRecords`).
pub const MAX_RECORDS: usize = 1000;
/// A longer line is cut to this many bytes.
const MAX_LINE: usize = 4096;
/// The most console bytes one refresh reads: a long console is caught
/// up with over several requests rather than in one.
pub const REFRESH_BYTES: u64 = 4 << 20;

#[derive(Debug, Default)]
pub struct HostLog {
    /// Console bytes taken so far.
    offset: u64,
    /// The line number of `lines[0]`, from 1.
    first: u64,
    lines: VecDeque<String>,
    /// The line being written, not ended yet.
    partial: Vec<u8>,
}

impl HostLog {
    /// The console offset to read from next.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Takes the console's next bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.offset += data.len() as u64;
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end()
                    .to_string();
                self.partial.clear();
                if self.lines.is_empty() {
                    self.first = self.first.max(1);
                }
                self.lines.push_back(line);
                if self.lines.len() > MAX_RECORDS {
                    self.lines.pop_front();
                    self.first += 1;
                }
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
            }
        }
    }

    /// The kept lines: (Id, text), oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (u64, &str)> {
        (self.first..).zip(self.lines.iter().map(String::as_str))
    }

    /// Line `id`, if it is kept.
    pub fn entry(&self, id: u64) -> Option<&str> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.lines.get(index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_numbers_as_the_console_grows() {
        let mut log = HostLog::default();
        log.feed(b"SeaBIOS\r\nBooting from ");
        assert_eq!(log.entries().collect::<Vec<_>>(), vec![(1, "SeaBIOS")]);
        log.feed(b"DVD/CD...\n");
        assert_eq!(log.entry(2), Some("Booting from DVD/CD..."));
        assert_eq!(log.offset(), 32);
        for n in 0..MAX_RECORDS {
            log.feed(format!("line {n}\n").as_bytes());
        }
        // The oldest went; the others kept their Ids.
        assert_eq!(log.entry(1), None);
        assert_eq!(log.entry(2), None);
        assert_eq!(log.entry(3), Some("line 0"));
        assert_eq!(log.entries().count(), MAX_RECORDS);
        assert_eq!(log.entries().last(), Some((1002, "line 999")));
        assert_eq!(log.entry(1003), None);
        assert_eq!(log.entry(0), None);
        // A line without end is cut, and invalid UTF-8 is replaced.
        log.feed(&[b'x'; MAX_LINE + 10]);
        log.feed(b"\xff\n");
        assert_eq!(log.entry(1003).map(str::len), Some(MAX_LINE));
    }
}
