//! One journal record: `[len: u32][crc32: u32][payload]`, little-endian, where `payload` is an
//! [`Observation`] in a fixed binary layout. Raw bytes and timings only: the request path pays
//! for a copy of a few header fields and one `writev`, never for JSON or token counting.
//!
//! Payload: version `u8`, request id (16 bytes), timestamp (`i64` µs since the epoch), duration
//! (`u64` µs), full response length `u64`, HTTP status `u16` (0: none), ending `u8`, stream GET
//! `u8` (0: a message, 1: open, 2: replay), then four
//! byte strings, each a `u32` length and the bytes (`u32::MAX`: absent): session id, protocol
//! version, request, kept response. A request passed on to another server adds its upstream
//! hop: two more byte strings (upstream, its tool) and its share of the duration (`u64` µs);
//! a record without them has none.

use std::io::{IoSlice, Write};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ledger::entry::{Ending, Micros, Observation, StreamGet, UpstreamHop};

const VERSION: u8 = 1;
/// `len` and `crc32`.
pub const HEADER: usize = 8;
const ABSENT: u32 = u32::MAX;

/// Writes `observation` as one record with a single `writev`: with `O_APPEND`, concurrent
/// writers never interleave inside a record. Returns the bytes written.
pub fn write(mut file: &std::fs::File, observation: &Observation) -> std::io::Result<u64> {
    let request = &observation.request[..];
    let response = &observation.response[..];
    let mut head = Vec::with_capacity(96);
    head.extend_from_slice(&[0; HEADER]);
    head.push(VERSION);
    head.extend_from_slice(observation.request_id.as_bytes());
    head.extend_from_slice(&observation.timestamp.timestamp_micros().to_le_bytes());
    head.extend_from_slice(&observation.duration.micros().to_le_bytes());
    head.extend_from_slice(&observation.response_len.to_le_bytes());
    head.extend_from_slice(&observation.http_status.unwrap_or(0).to_le_bytes());
    head.push(ending_code(observation.ending));
    head.push(match observation.stream_get {
        None => 0,
        Some(StreamGet::Open) => 1,
        Some(StreamGet::Replay) => 2,
    });
    push_text(&mut head, observation.session_id.as_deref());
    push_text(&mut head, observation.protocol_version.as_deref());
    head.extend_from_slice(&length(request)?.to_le_bytes());
    let middle = length(response)?.to_le_bytes();
    let tail = hop_bytes(observation);
    let payload = head.len() - HEADER + request.len() + middle.len() + response.len() + tail.len();
    let mut crc = crc32fast::Hasher::new();
    for part in [&head[HEADER..], request, &middle, response, &tail] {
        crc.update(part);
    }
    head[..4].copy_from_slice(&length_of(payload)?.to_le_bytes());
    head[4..HEADER].copy_from_slice(&crc.finalize().to_le_bytes());
    let total = HEADER + payload;
    let parts = [
        IoSlice::new(&head),
        IoSlice::new(request),
        IoSlice::new(&middle),
        IoSlice::new(response),
        IoSlice::new(&tail),
    ];
    let written = file.write_vectored(&parts)?;
    if written != total {
        // Only a full disk does this to a regular file; the tail left behind fails its CRC.
        return Err(std::io::Error::other(format!(
            "short write to the ledger journal ({written} of {total} bytes)"
        )));
    }
    Ok(total as u64)
}

/// The upstream hop's fields, or nothing when the request was answered by Steward itself.
fn hop_bytes(observation: &Observation) -> Vec<u8> {
    let mut tail = Vec::new();
    if let Some(hop) = &observation.upstream {
        push_text(&mut tail, Some(&hop.upstream));
        push_text(&mut tail, hop.tool.as_deref());
        tail.extend_from_slice(&hop.duration.micros().to_le_bytes());
    }
    tail
}

fn push_text(buf: &mut Vec<u8>, text: Option<&str>) {
    match text {
        // Header values are far below 4 GiB (hyper bounds them).
        Some(text) if text.len() < ABSENT as usize => {
            buf.extend_from_slice(&(text.len() as u32).to_le_bytes());
            buf.extend_from_slice(text.as_bytes());
        }
        _ => buf.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

fn length(bytes: &[u8]) -> std::io::Result<u32> {
    length_of(bytes.len())
}

fn length_of(n: usize) -> std::io::Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| *n != ABSENT)
        .ok_or_else(|| std::io::Error::other("a ledger journal record cannot exceed 4 GiB"))
}

fn ending_code(ending: Ending) -> u8 {
    match ending {
        Ending::Complete => 0,
        Ending::Cancelled => 1,
        Ending::TimedOut => 2,
    }
}

/// Why a record could not be read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Damage {
    /// The file ends inside a record (a write cut short by a crash or power loss).
    TornTail,
    /// The checksum does not match the bytes.
    Checksum,
    /// The checksum matches but the layout does not (another version, or a bug).
    Undecodable,
}

impl Damage {
    pub fn describe(self) -> &'static str {
        match self {
            Damage::TornTail => "a record cut short at the end of the journal (torn write)",
            Damage::Checksum => "a record whose CRC-32 does not match its bytes",
            Damage::Undecodable => "a record in a layout this version cannot read",
        }
    }
}

/// What a journal segment held: the observations that read back whole, and the damaged records.
#[derive(Debug, Default)]
pub struct Scan {
    pub observations: Vec<Observation>,
    pub damaged: Vec<Damage>,
}

/// Reads every record of `data` (a segment's bytes after its magic). A record whose checksum
/// fails is skipped and the next one read; a length that runs past the end (or a zero-filled
/// tail, as a power loss can leave) ends the scan, counted once.
pub fn scan(mut data: &[u8], into: &mut Scan) {
    while !data.is_empty() {
        let Some((len, crc)) = data
            .get(..HEADER)
            .map(|h| (le_u32(&h[..4]), le_u32(&h[4..])))
        else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        let Some(payload) = (len > 0)
            .then(|| data.get(HEADER..HEADER + len as usize))
            .flatten()
        else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        data = &data[HEADER + len as usize..];
        if crc32fast::hash(payload) != crc {
            into.damaged.push(Damage::Checksum);
            continue;
        }
        match decode(payload) {
            Some(observation) => into.observations.push(observation),
            None => into.damaged.push(Damage::Undecodable),
        }
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

/// Reads fields off the front of a payload; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u32()? {
            ABSENT => Some(None),
            n => self.take(n as usize).map(Some),
        }
    }
    fn text(&mut self) -> Option<Option<String>> {
        match self.bytes()? {
            None => Some(None),
            Some(bytes) => String::from_utf8(bytes.to_vec()).ok().map(Some),
        }
    }
}

fn decode(payload: &[u8]) -> Option<Observation> {
    let mut r = Reader(payload);
    if r.array::<1>()? != [VERSION] {
        return None;
    }
    let request_id = Uuid::from_bytes(r.array()?);
    let timestamp = DateTime::<Utc>::from_timestamp_micros(i64::from_le_bytes(r.array()?))?;
    let duration = Micros::from_micros(r.u64()?);
    let response_len = r.u64()?;
    let http_status = Some(u16::from_le_bytes(r.array()?)).filter(|s| *s != 0);
    let ending = match r.array::<1>()? {
        [0] => Ending::Complete,
        [1] => Ending::Cancelled,
        [2] => Ending::TimedOut,
        _ => return None,
    };
    let stream_get = match r.array::<1>()? {
        [0] => None,
        [1] => Some(StreamGet::Open),
        [2] => Some(StreamGet::Replay),
        _ => return None,
    };
    let session_id = r.text()?;
    let protocol_version = r.text()?;
    let request = Bytes::copy_from_slice(r.bytes()??);
    let response = Bytes::copy_from_slice(r.bytes()??);
    let upstream = match r.0.is_empty() {
        true => None,
        false => Some(UpstreamHop {
            upstream: r.text()??,
            tool: r.text()?,
            duration: Micros::from_micros(r.u64()?),
        }),
    };
    r.0.is_empty().then_some(Observation {
        request_id,
        session_id,
        timestamp,
        duration,
        request,
        http_status,
        response,
        response_len,
        ending,
        protocol_version,
        stream_get,
        upstream,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(n: u8) -> Observation {
        Observation {
            request_id: Uuid::now_v7(),
            session_id: n.is_multiple_of(2).then(|| format!("session-{n}")),
            timestamp: DateTime::from_timestamp_micros(1_764_000_000_123_456 + i64::from(n))
                .expect("a valid timestamp"),
            duration: Micros::from_micros(1234),
            request: Bytes::from(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{n},\"method\":\"ping\"}}"
            )),
            http_status: (!n.is_multiple_of(3)).then_some(200),
            response: Bytes::from(format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{n},\"result\":{{}}}}"
            )),
            response_len: 40 + u64::from(n),
            ending: Ending::Cancelled,
            protocol_version: Some("2025-11-25".into()),
            stream_get: (n == 5).then_some(StreamGet::Replay),
            upstream: (n == 4).then(|| UpstreamHop {
                upstream: "docs".into(),
                tool: Some("search".into()),
                duration: Micros::from_micros(900),
            }),
        }
    }

    fn assert_same(a: &Observation, b: &Observation) {
        assert_eq!(a.request_id, b.request_id);
        assert_eq!(a.session_id, b.session_id);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.duration, b.duration);
        assert_eq!(a.request, b.request);
        assert_eq!(a.http_status, b.http_status);
        assert_eq!(a.response, b.response);
        assert_eq!(a.response_len, b.response_len);
        assert_eq!(a.ending, b.ending);
        assert_eq!(a.protocol_version, b.protocol_version);
        assert_eq!(a.stream_get, b.stream_get);
        assert_eq!(a.upstream, b.upstream);
    }

    /// The bytes of a journal holding `observations`, and what `write` said it wrote.
    fn journal_of(observations: &[Observation]) -> std::io::Result<(Vec<u8>, u64)> {
        let file = tempfile::tempfile()?;
        let mut total = 0;
        for o in observations {
            total += write(&file, o)?;
        }
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        Ok((bytes, total))
    }

    #[test]
    fn records_read_back_exactly() -> std::io::Result<()> {
        let written: Vec<_> = (0..6).map(observation).collect();
        let (bytes, total) = journal_of(&written)?;
        assert_eq!(total, bytes.len() as u64);
        let mut read = Scan::default();
        scan(&bytes, &mut read);
        assert!(read.damaged.is_empty());
        assert_eq!(read.observations.len(), written.len());
        written
            .iter()
            .zip(&read.observations)
            .for_each(|(a, b)| assert_same(a, b));
        Ok(())
    }

    #[test]
    fn a_torn_tail_is_counted_and_everything_before_it_is_kept() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (bytes, _) = journal_of(&written)?;
        for cut in [1, 5, HEADER, HEADER + 3, 20] {
            let mut read = Scan::default();
            scan(&bytes[..bytes.len() - cut], &mut read);
            assert_eq!(read.observations.len(), 2, "cut {cut} bytes");
            assert_eq!(read.damaged, [Damage::TornTail]);
        }
        // A power loss can leave the file longer than what was written, filled with zeros.
        let mut zeroed = bytes.clone();
        zeroed.extend_from_slice(&[0; 4096]);
        let mut read = Scan::default();
        scan(&zeroed, &mut read);
        assert_eq!(read.observations.len(), 3);
        assert_eq!(read.damaged, [Damage::TornTail]);
        Ok(())
    }

    #[test]
    fn a_corrupt_record_is_skipped_and_the_rest_replays() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (mut bytes, _) = journal_of(&written)?;
        let first_len = HEADER + le_u32(&bytes[..4]) as usize;
        bytes[first_len - 2] ^= 0xff;
        let mut read = Scan::default();
        scan(&bytes, &mut read);
        assert_eq!(read.damaged, [Damage::Checksum]);
        assert_eq!(read.observations.len(), 2);
        assert_same(&read.observations[0], &written[1]);
        assert_same(&read.observations[1], &written[2]);
        Ok(())
    }

    #[test]
    fn garbage_never_panics() {
        let mut read = Scan::default();
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            scan(&junk, &mut read);
        }
        let mut forged = Vec::new();
        forged.extend_from_slice(&3u32.to_le_bytes());
        forged.extend_from_slice(&crc32fast::hash(&[VERSION, 1, 2]).to_le_bytes());
        forged.extend_from_slice(&[VERSION, 1, 2]);
        let mut read = Scan::default();
        scan(&forged, &mut read);
        assert_eq!(read.damaged, [Damage::Undecodable]);
    }
}
