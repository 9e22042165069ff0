//! One journal record: `[len: u32][crc32: u32][stamp: u64][payload]`, little-endian, where
//! `payload` is an [`Observation`] in a fixed binary layout and `stamp` is the segment's own
//! random stamp (see [`super`]: a recycled segment file still holds an earlier life's records
//! after the new ones, and those carry another stamp). The checksum covers the stamp and the
//! payload. Raw bytes and timings only: the request path pays for a copy of a few header fields
//! and one `writev`, never for JSON or token counting. Segments of the first layout (no stamp:
//! `[len][crc32][payload]`, checksum over the payload) are still read.
//!
//! Payload: version `u8`, request id (16 bytes), timestamp (`i64` µs since the epoch), duration
//! (`u64` µs), full response length `u64`, HTTP status `u16` (0: none), ending `u8`, stream GET
//! `u8` (0: a message, 1: open, 2: replay), the subject (version 2 only: `u8` 0 for none, or 1
//! and 16 bytes of id), then four
//! byte strings, each a `u32` length and the bytes (`u32::MAX`: absent): session id, protocol
//! version, request, kept response. A request passed on to another server adds its upstream
//! hop: two more byte strings (upstream, its tool) and its share of the duration (`u64` µs);
//! a record without them has none.

use std::io::{IoSlice, Write};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ledger::entry::{Ending, Micros, Observation, StreamGet, UpstreamHop};

const VERSION: u8 = 2;
/// Records of this version (before the subject) are still read.
const VERSION_WITHOUT_SUBJECT: u8 = 1;
/// `len` and `crc32` (the first layout's whole header).
pub const HEADER: usize = 8;
/// `len`, `crc32` and the segment's stamp.
pub const STAMPED_HEADER: usize = HEADER + 8;
const ABSENT: u32 = u32::MAX;

/// What a record holds, borrowed: the request path writes it straight from the fields it has
/// (the capture's pending request, the reply kept so far), without building an
/// [`Observation`] (two `String` clones and a copy of a multi-frame reply) per record.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    pub request_id: Uuid,
    pub session_id: Option<&'a str>,
    pub timestamp: DateTime<Utc>,
    pub duration: Micros,
    pub request: &'a [u8],
    pub http_status: Option<u16>,
    pub response: &'a [u8],
    pub response_len: u64,
    pub ending: Ending,
    pub protocol_version: Option<&'a str>,
    pub stream_get: Option<StreamGet>,
    pub upstream: Option<&'a UpstreamHop>,
    pub subject: Option<Uuid>,
}

impl<'a> From<&'a Observation> for Record<'a> {
    fn from(o: &'a Observation) -> Self {
        Record {
            request_id: o.request_id,
            session_id: o.session_id.as_deref(),
            timestamp: o.timestamp,
            duration: o.duration,
            request: &o.request,
            http_status: o.http_status,
            response: &o.response,
            response_len: o.response_len,
            ending: o.ending,
            protocol_version: o.protocol_version.as_deref(),
            stream_get: o.stream_get,
            upstream: o.upstream.as_ref(),
            subject: o.subject,
        }
    }
}

/// The stamped header and the fixed-size fields, up to and including the subject.
const FIXED: usize = STAMPED_HEADER + 1 + 16 + 8 + 8 + 8 + 2 + 1 + 1 + 1 + 16;

/// The bytes [`write`] writes for `record`.
pub fn size(record: &Record<'_>) -> std::io::Result<u64> {
    let text = |t: Option<&str>| 4 + t.map_or(0, str::len);
    let hop = record
        .upstream
        .map_or(0, |h| text(Some(&h.upstream)) + text(h.tool.as_deref()) + 8);
    let fixed = FIXED - record.subject.map_or(16, |_| 0);
    let total = fixed
        + text(record.session_id)
        + text(record.protocol_version)
        + 4
        + length(record.request)? as usize
        + 4
        + length(record.response)? as usize
        + hop;
    Ok(total as u64)
}

/// Writes `record` stamped with `stamp` at the file's current offset, with one `writev`; the
/// caller holds the segment (writes are never concurrent) and has positioned the file. Every
/// part is on the stack or borrowed: nothing is allocated. Returns the bytes written.
pub fn write(mut file: &std::fs::File, stamp: u64, record: &Record<'_>) -> std::io::Result<u64> {
    let mut fixed = [0u8; FIXED];
    let used = fixed_fields(record, &mut fixed);
    fixed[HEADER..STAMPED_HEADER].copy_from_slice(&stamp.to_le_bytes());
    let (session_len, session) = text_parts(record.session_id);
    let (protocol_len, protocol) = text_parts(record.protocol_version);
    let request_len = length(record.request)?.to_le_bytes();
    let response_len = length(record.response)?.to_le_bytes();
    let hop = record.upstream;
    let (upstream_len, upstream) = text_parts(hop.map(|h| h.upstream.as_str()));
    let (tool_len, tool) = text_parts(hop.and_then(|h| h.tool.as_deref()));
    let hop_duration = hop.map_or(0, |h| h.duration.micros()).to_le_bytes();
    // A request Steward answered itself has no hop: none of its three fields.
    let hop_parts: [&[u8]; 5] = match hop {
        Some(_) => [&upstream_len, upstream, &tool_len, tool, &hop_duration],
        None => [&[]; 5],
    };
    let [a, b, c, d, e] = hop_parts;
    let rest: [&[u8]; 13] = [
        &session_len,
        session,
        &protocol_len,
        protocol,
        &request_len,
        record.request,
        &response_len,
        record.response,
        a,
        b,
        c,
        d,
        e,
    ];
    let total = used + rest.iter().map(|p| p.len()).sum::<usize>();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fixed[HEADER..used]);
    rest.iter().for_each(|part| crc.update(part));
    fixed[..4].copy_from_slice(&length_of(total - STAMPED_HEADER)?.to_le_bytes());
    fixed[4..HEADER].copy_from_slice(&crc.finalize().to_le_bytes());
    let mut slices = [IoSlice::new(&fixed[..used]); 14];
    for (slice, part) in slices[1..].iter_mut().zip(rest) {
        *slice = IoSlice::new(part);
    }
    let written = file.write_vectored(&slices)?;
    if written != total {
        // Only a full disk does this to a regular file; the tail left behind fails its CRC.
        return Err(std::io::Error::other(format!(
            "short write to the ledger journal ({written} of {total} bytes)"
        )));
    }
    Ok(total as u64)
}

/// Fills in the fixed-size fields after the header; returns how many bytes of `fixed` they
/// take (the subject's id only when there is one).
fn fixed_fields(record: &Record<'_>, fixed: &mut [u8; FIXED]) -> usize {
    let subject_flag = [u8::from(record.subject.is_some())];
    let subject = record.subject.as_ref().map_or(&[][..], |id| id.as_bytes());
    let fields: [&[u8]; 10] = [
        &[VERSION],
        record.request_id.as_bytes(),
        &record.timestamp.timestamp_micros().to_le_bytes(),
        &record.duration.micros().to_le_bytes(),
        &record.response_len.to_le_bytes(),
        &record.http_status.unwrap_or(0).to_le_bytes(),
        &[ending_code(record.ending)],
        &[match record.stream_get {
            None => 0,
            Some(StreamGet::Open) => 1,
            Some(StreamGet::Replay) => 2,
        }],
        &subject_flag,
        subject,
    ];
    let mut at = STAMPED_HEADER;
    for field in fields {
        fixed[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
    at
}

/// A byte string's length prefix and bytes; absent (or, impossibly for a header value, 4 GiB
/// or more) is the `ABSENT` length and no bytes.
fn text_parts(text: Option<&str>) -> ([u8; 4], &[u8]) {
    match text {
        // Header values are far below 4 GiB (hyper bounds them).
        Some(text) if text.len() < ABSENT as usize => {
            ((text.len() as u32).to_le_bytes(), text.as_bytes())
        }
        _ => (ABSENT.to_le_bytes(), &[]),
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

/// Reads the records of a stamped segment (its bytes after the magic and the stamp) up to the
/// first record of another stamp: what a recycled file held before (or zeros, as a power loss
/// can leave) follows the last record written. A length that runs past the end ends the scan,
/// counted once; a record whose checksum fails is skipped and the next one read.
pub fn scan_stamped(mut data: &[u8], stamp: u64, into: &mut Scan) {
    while !data.is_empty() {
        let Some(header) = data.get(..STAMPED_HEADER) else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        if header[HEADER..] != stamp.to_le_bytes() {
            return;
        }
        let (len, crc) = (le_u32(&header[..4]), le_u32(&header[4..HEADER]));
        let Some(payload) = data.get(STAMPED_HEADER..STAMPED_HEADER + len as usize) else {
            into.damaged.push(Damage::TornTail);
            return;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[HEADER..]);
        hasher.update(payload);
        data = &data[STAMPED_HEADER + len as usize..];
        if hasher.finalize() != crc {
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
    let [version] = r.array::<1>()?;
    if version != VERSION && version != VERSION_WITHOUT_SUBJECT {
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
    let subject = match version {
        VERSION_WITHOUT_SUBJECT => None,
        _ => match r.array::<1>()? {
            [0] => None,
            [1] => Some(Uuid::from_bytes(r.array()?)),
            _ => return None,
        },
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
        subject,
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
            subject: (n == 4).then(Uuid::now_v7),
        }
    }

    const STAMP: u64 = 0x5eed_1234_abcd_0001;

    /// The bytes of a stamped segment (after its magic and stamp) holding `observations`, and
    /// what `write` said it wrote.
    fn journal_of(observations: &[Observation]) -> std::io::Result<(Vec<u8>, u64)> {
        let file = tempfile::tempfile()?;
        let mut total = 0;
        for o in observations {
            let record = Record::from(o);
            let written = write(&file, STAMP, &record)?;
            assert_eq!(written, size(&record)?);
            total += written;
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
        scan_stamped(&bytes, STAMP, &mut read);
        assert!(read.damaged.is_empty());
        assert_eq!(read.observations.len(), written.len());
        written
            .iter()
            .zip(&read.observations)
            .for_each(|(a, b)| assert_eq!(a, b));
        Ok(())
    }

    #[test]
    fn a_torn_tail_is_counted_and_everything_before_it_is_kept() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (bytes, _) = journal_of(&written)?;
        for cut in [1, 5, HEADER, HEADER + 3, 20] {
            let mut read = Scan::default();
            scan_stamped(&bytes[..bytes.len() - cut], STAMP, &mut read);
            assert_eq!(read.observations.len(), 2, "cut {cut} bytes");
            assert_eq!(read.damaged, [Damage::TornTail]);
        }
        Ok(())
    }

    /// A recycled segment holds its earlier life's records after the new ones (another stamp,
    /// and the new records' ends fall anywhere in them): the scan ends at the last new record.
    #[test]
    fn what_a_recycled_segment_held_before_is_not_read() -> std::io::Result<()> {
        let old: Vec<_> = (0..6).map(observation).collect();
        let file = tempfile::tempfile()?;
        for o in &old {
            write(&file, STAMP + 1, &Record::from(o))?;
        }
        let new: Vec<_> = (0..2).map(observation).collect();
        std::io::Seek::rewind(&mut &file)?;
        let mut at = 0;
        for o in &new {
            at += write(&file, STAMP, &Record::from(o))?;
        }
        let mut bytes = Vec::new();
        std::io::Seek::rewind(&mut &file)?;
        std::io::Read::read_to_end(&mut &file, &mut bytes)?;
        assert!(bytes.len() as u64 > at, "the old records are still there");
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(read.observations.len(), 2);
        assert_eq!(read.observations[1], new[1]);
        // So does a zero-filled tail (a file extended for recycling, or a power loss).
        let (mut zeroed, _) = journal_of(&new)?;
        zeroed.extend_from_slice(&[0; 4096]);
        let mut read = Scan::default();
        scan_stamped(&zeroed, STAMP, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(read.observations.len(), 2);
        Ok(())
    }

    #[test]
    fn a_corrupt_record_is_skipped_and_the_rest_replays() -> std::io::Result<()> {
        let written: Vec<_> = (0..3).map(observation).collect();
        let (mut bytes, _) = journal_of(&written)?;
        let first_len = STAMPED_HEADER + le_u32(&bytes[..4]) as usize;
        bytes[first_len - 2] ^= 0xff;
        let mut read = Scan::default();
        scan_stamped(&bytes, STAMP, &mut read);
        assert_eq!(read.damaged, [Damage::Checksum]);
        assert_eq!(read.observations.len(), 2);
        assert_eq!(read.observations[0], written[1]);
        assert_eq!(read.observations[1], written[2]);
        Ok(())
    }

    /// Segments of the first layout (no stamp) and records of the version before subjects
    /// replay after an upgrade.
    #[test]
    fn a_record_of_the_first_layout_without_a_subject_still_reads() -> std::io::Result<()> {
        let written = observation(1);
        let (bytes, _) = journal_of(std::slice::from_ref(&written))?;
        // The old layout: no stamp, version 1, and no subject byte (it follows the 45 fixed
        // bytes).
        let mut payload = bytes[STAMPED_HEADER..].to_vec();
        assert_eq!(payload.remove(45), 0, "no subject");
        payload[0] = VERSION_WITHOUT_SUBJECT;
        let mut old = (payload.len() as u32).to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        old.extend_from_slice(&payload);
        let mut read = Scan::default();
        scan(&old, &mut read);
        assert!(read.damaged.is_empty(), "{:?}", read.damaged);
        assert_eq!(read.observations[0], written);
        // A torn tail and a zero-filled one in the first layout.
        for tail in [
            &old[..old.len() - 3],
            &[&old[..], &[0; 64][..]].concat()[..],
        ] {
            let mut read = Scan::default();
            scan(tail, &mut read);
            assert_eq!(read.damaged, [Damage::TornTail]);
        }
        Ok(())
    }

    #[test]
    fn garbage_never_panics() {
        let mut read = Scan::default();
        for len in 0..64u8 {
            let junk: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            scan(&junk, &mut read);
            scan_stamped(&junk, STAMP, &mut read);
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
