//! The on-disk format: segment headers and append frames, encoded and decoded.
//!
//! Everything is little-endian. `docs/format.md` describes the same layout for people; this
//! file is the authority. Decoders take arbitrary bytes and answer `Err(Corrupt)`, never panic.
//!
//! ```text
//! segment file = header (64 bytes) | frame | frame | ...
//!
//! header:
//!   0   [u8; 8]  magic "FACTUMSG"
//!   8   u32      format version (FORMAT_VERSION)
//!   12  u32      reserved, 0
//!   16  u64      segment number (1, 2, ...)
//!   24  u64      first position: the position of the segment's first event
//!   32  [u8; 28] reserved, 0
//!   60  u32      crc32 of bytes 0..60
//!
//! frame (one append, all its events, written and checked as a unit):
//!   0   u32      crc32 of bytes 4..8+body_len (the length and the body)
//!   4   u32      body_len
//!   8   body:
//!       0   u8   frame kind (1 = events)
//!       1   u8   reserved, 0
//!       2   u16  stream name length
//!       4   u32  event count (≥ 1)
//!       8   u64  first position
//!       16  u64  first revision
//!       24  u64  recorded at, microseconds since the Unix epoch
//!       32  stream name (UTF-8)
//!       then each event:
//!           0   [u8; 16] id (UUID bytes)
//!           16  u32      schema version
//!           20  u8       content type code (0 = custom, 1 = application/json,
//!                        2 = application/octet-stream)
//!           21  u8       tag count
//!           22  u16      event type length
//!           24  u32      data length
//!           28  u32      metadata length
//!           32  [u16 length, content type] if the code is 0
//!               event type, data, metadata, then each tag as [u8 length, tag]
//! ```

use bytes::Bytes;
use factum_core::{
    CONTENT_TYPE_BYTES, CONTENT_TYPE_JSON, Error, EventId, Position, RecordedEvent, SharedStr,
    StreamName, Timestamp,
};

/// The format version this code writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The size of a segment header.
pub const SEGMENT_HEADER_LEN: usize = 64;
const SEGMENT_MAGIC: [u8; 8] = *b"FACTUMSG";

/// The bytes before a frame's body: crc32 and body length.
pub const FRAME_HEADER_LEN: usize = 8;
const FRAME_KIND_EVENTS: u8 = 1;
const BODY_FIXED_LEN: usize = 32;
const EVENT_FIXED_LEN: usize = 32;
/// The largest body a frame may have: an append of 16 MiB plus generous framing. Anything
/// larger in a length field is corruption, not a frame.
pub const FRAME_BODY_LEN_MAX: usize = 64 * 1024 * 1024;

const CONTENT_TYPE_CUSTOM: u8 = 0;
const CONTENT_TYPE_JSON_CODE: u8 = 1;
const CONTENT_TYPE_BYTES_CODE: u8 = 2;

const _: () = assert!(SEGMENT_HEADER_LEN == 64);
const _: () = assert!(FRAME_HEADER_LEN == 8);

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The segment's number, from 1, one more than the previous segment's.
    pub segment_number: u64,
    /// The position of the segment's first event.
    pub first_position: u64,
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut bytes = [0u8; SEGMENT_HEADER_LEN];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.segment_number.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.first_position.to_le_bytes());
        let crc = crc32fast::hash(&bytes[0..60]);
        bytes[60..64].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Decodes a header, refusing a newer format with a clear error.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, Error> {
        if bytes.len() < SEGMENT_HEADER_LEN {
            return Err(corrupt("segment header is truncated"));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(corrupt("not a Factum segment (bad magic)"));
        }
        if crc32fast::hash(&bytes[0..60]) != read_u32(bytes, 60) {
            return Err(corrupt("segment header checksum mismatch"));
        }
        let version = read_u32(bytes, 8);
        if version > FORMAT_VERSION {
            return Err(Error::Unavailable {
                reason: format!(
                    "the data directory uses log format {version}, newer than the {FORMAT_VERSION} \
                     this Factum reads: upgrade Factum to open it"
                ),
            });
        }
        if version == 0 {
            return Err(corrupt("segment header has format version 0"));
        }
        let header = SegmentHeader {
            segment_number: read_u64(bytes, 16),
            first_position: read_u64(bytes, 24),
        };
        if header.first_position == 0 || header.segment_number == 0 {
            return Err(corrupt(
                "segment header has a zero segment number or first position",
            ));
        }
        Ok(header)
    }
}

/// One event as the writer hands it to the encoder.
#[derive(Debug, Clone)]
pub struct EventToWrite {
    /// The event's id.
    pub id: EventId,
    /// Its type.
    pub event_type: String,
    /// Its schema version.
    pub schema_version: u32,
    /// Its content type.
    pub content_type: String,
    /// Its data.
    pub data: Bytes,
    /// Its metadata.
    pub metadata: Bytes,
    /// Its tags.
    pub tags: Vec<String>,
}

/// The fixed part of a frame: what every event of one append shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHead {
    /// The stream appended to.
    pub stream: StreamName,
    /// The position of the first event.
    pub first_position: u64,
    /// The revision of the first event.
    pub first_revision: u64,
    /// When the append was committed.
    pub recorded_at: Timestamp,
    /// How many events the frame holds.
    pub event_count: u32,
}

/// Appends the encoding of one frame to `out`; returns the frame's length in bytes.
pub fn encode_frame(out: &mut Vec<u8>, head: &FrameHead, events: &[EventToWrite]) -> usize {
    assert!(!events.is_empty(), "a frame holds at least one event");
    assert_eq!(
        head.event_count as usize,
        events.len(),
        "event count matches the events"
    );
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    let stream = head.stream.as_str().as_bytes();
    out.push(FRAME_KIND_EVENTS);
    out.push(0);
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(&head.event_count.to_le_bytes());
    out.extend_from_slice(&head.first_position.to_le_bytes());
    out.extend_from_slice(&head.first_revision.to_le_bytes());
    out.extend_from_slice(&head.recorded_at.unix_micros().to_le_bytes());
    out.extend_from_slice(stream);
    for event in events {
        let content_type_code = match event.content_type.as_str() {
            CONTENT_TYPE_JSON => CONTENT_TYPE_JSON_CODE,
            CONTENT_TYPE_BYTES => CONTENT_TYPE_BYTES_CODE,
            _ => CONTENT_TYPE_CUSTOM,
        };
        out.extend_from_slice(event.id.0.as_bytes());
        out.extend_from_slice(&event.schema_version.to_le_bytes());
        out.push(content_type_code);
        out.push(event.tags.len() as u8);
        out.extend_from_slice(&(event.event_type.len() as u16).to_le_bytes());
        out.extend_from_slice(&(event.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(event.metadata.len() as u32).to_le_bytes());
        if content_type_code == CONTENT_TYPE_CUSTOM {
            out.extend_from_slice(&(event.content_type.len() as u16).to_le_bytes());
            out.extend_from_slice(event.content_type.as_bytes());
        }
        out.extend_from_slice(event.event_type.as_bytes());
        out.extend_from_slice(&event.data);
        out.extend_from_slice(&event.metadata);
        for tag in &event.tags {
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
        }
    }
    let body_len = out.len() - start - FRAME_HEADER_LEN;
    assert!(
        body_len <= FRAME_BODY_LEN_MAX,
        "appends are limited well below the frame limit"
    );
    out[start + 4..start + 8].copy_from_slice(&(body_len as u32).to_le_bytes());
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// What the frame at the start of some bytes is.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A whole, checksummed frame of this many bytes (header included).
    Complete(usize),
    /// The bytes end before the frame does: read more (or, at the end of the log, a torn tail).
    Incomplete,
}

/// Checks the frame at the start of `bytes`: its length and checksum, without decoding it.
pub fn check_frame(bytes: &[u8]) -> Result<FrameCheck, Error> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Ok(FrameCheck::Incomplete);
    }
    let body_len = read_u32(bytes, 4) as usize;
    if !(BODY_FIXED_LEN..=FRAME_BODY_LEN_MAX).contains(&body_len) {
        return Err(corrupt(format!(
            "frame body length {body_len} is out of range"
        )));
    }
    let frame_len = FRAME_HEADER_LEN + body_len;
    if bytes.len() < frame_len {
        return Ok(FrameCheck::Incomplete);
    }
    if crc32fast::hash(&bytes[4..frame_len]) != read_u32(bytes, 0) {
        return Err(corrupt("frame checksum mismatch"));
    }
    Ok(FrameCheck::Complete(frame_len))
}

/// Decodes the head of a checked frame (`frame` is exactly one frame, as
/// [`check_frame`] measured it).
pub fn decode_frame_head(frame: &[u8]) -> Result<FrameHead, Error> {
    parse_head(frame, &mut StreamNames::default())
}

/// Stream names already decoded, so frames of a stream seen before reuse its name.
#[derive(Default)]
struct StreamNames(std::collections::HashMap<Box<[u8]>, StreamName>);

impl StreamNames {
    /// Bounds the cache; a reader of many streams simply decodes names again.
    const ENTRIES_MAX: usize = 4096;

    fn get(&mut self, raw: &[u8]) -> Result<StreamName, Error> {
        if let Some(stream) = self.0.get(raw) {
            return Ok(stream.clone());
        }
        let name = std::str::from_utf8(raw).map_err(|_| corrupt("stream name is not UTF-8"))?;
        let stream = StreamName::new(name).map_err(|_| corrupt("stream name is invalid"))?;
        if self.0.len() >= Self::ENTRIES_MAX {
            self.0.clear();
        }
        self.0.insert(raw.into(), stream.clone());
        Ok(stream)
    }
}

/// Decodes a frame head, taking its stream name from `streams` when it was seen before.
fn parse_head(frame: &[u8], streams: &mut StreamNames) -> Result<FrameHead, Error> {
    let mut reader = Reader::new(frame, FRAME_HEADER_LEN);
    let kind = reader.u8()?;
    if kind != FRAME_KIND_EVENTS {
        return Err(corrupt(format!("unknown frame kind {kind}")));
    }
    reader.u8()?;
    let stream_len = reader.u16()? as usize;
    let event_count = reader.u32()?;
    let first_position = reader.u64()?;
    let first_revision = reader.u64()?;
    let recorded_at = Timestamp::from_unix_micros(reader.u64()?);
    let stream = streams.get(reader.bytes(stream_len)?)?;
    if event_count == 0 {
        return Err(corrupt("frame holds no event"));
    }
    if first_position == 0
        || first_position
            .checked_add(u64::from(event_count))
            .is_none_or(|end| end > Position::MAX.0 + 1)
    {
        return Err(corrupt("frame positions are out of range"));
    }
    if first_revision.checked_add(u64::from(event_count)).is_none() {
        return Err(corrupt("frame revisions are out of range"));
    }
    Ok(FrameHead {
        stream,
        first_position,
        first_revision,
        recorded_at,
        event_count,
    })
}

/// Decodes every event of a checked frame, in order, copying each event's data and metadata
/// (small allocations are cheaper than one large one per frame, which the allocator maps and
/// unmaps).
pub fn decode_frame(frame: &[u8]) -> Result<Vec<RecordedEvent>, Error> {
    FrameDecoder::default().decode(frame)
}

/// Decodes every event of a checked frame, in order, without copying data and metadata: the
/// events share `frame`'s buffer.
pub fn decode_frame_bytes(frame: &Bytes) -> Result<Vec<RecordedEvent>, Error> {
    let head = decode_frame_head(frame)?;
    decode_events(frame, &head, &mut Strings::default(), |start, len| {
        frame.slice(start..start + len)
    })
}

/// Decodes frames one after another, reusing the strings they repeat (stream names, event
/// types, content types): a sequential reader decodes each distinct string about once.
#[derive(Default)]
pub struct FrameDecoder {
    streams: StreamNames,
    strings: Strings,
}

impl FrameDecoder {
    /// Decodes a checked frame's head.
    pub fn head(&mut self, frame: &[u8]) -> Result<FrameHead, Error> {
        parse_head(frame, &mut self.streams)
    }

    /// Decodes the events of a checked frame whose head is `head`.
    pub fn events(&mut self, frame: &[u8], head: &FrameHead) -> Result<Vec<RecordedEvent>, Error> {
        let mut events = Vec::with_capacity(head.event_count.min(1024) as usize);
        self.events_into(frame, head, &mut events)?;
        Ok(events)
    }

    /// Decodes the events of a checked frame whose head is `head`, appending them to `out`
    /// (a reader reuses one buffer for every frame).
    pub fn events_into(
        &mut self,
        frame: &[u8],
        head: &FrameHead,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<(), Error> {
        decode_events_into(frame, head, &mut self.strings, out, |start, len| {
            Bytes::copy_from_slice(&frame[start..start + len])
        })
    }

    /// Decodes every event of a checked frame.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Vec<RecordedEvent>, Error> {
        let head = self.head(frame)?;
        self.events(frame, &head)
    }
}

/// Decodes a frame's events; `bytes_at(start, len)` makes the `Bytes` of a field known to be in
/// range.
fn decode_events(
    frame: &[u8],
    head: &FrameHead,
    strings: &mut Strings,
    bytes_at: impl Fn(usize, usize) -> Bytes,
) -> Result<Vec<RecordedEvent>, Error> {
    let mut events = Vec::with_capacity(head.event_count.min(1024) as usize);
    decode_events_into(frame, head, strings, &mut events, bytes_at)?;
    Ok(events)
}

/// [`decode_events`] into a caller's buffer. On error `out` may hold some of the frame's events.
fn decode_events_into(
    frame: &[u8],
    head: &FrameHead,
    strings: &mut Strings,
    out: &mut Vec<RecordedEvent>,
    bytes_at: impl Fn(usize, usize) -> Bytes,
) -> Result<(), Error> {
    let mut reader = Reader::new(
        frame,
        FRAME_HEADER_LEN + BODY_FIXED_LEN + head.stream.as_str().len(),
    );
    for index in 0..u64::from(head.event_count) {
        out.push(decode_event(&mut reader, &bytes_at, strings, head, index)?);
    }
    if reader.offset != frame.len() {
        return Err(corrupt("frame has trailing bytes after its events"));
    }
    Ok(())
}

/// The strings a frame's events repeat (types, content types), made once per frame.
#[derive(Default)]
struct Strings {
    /// The last event type decoded.
    event_type: Option<SharedStr>,
    json: Option<SharedStr>,
    bytes: Option<SharedStr>,
}

impl Strings {
    fn event_type(&mut self, raw: &[u8]) -> Result<SharedStr, Error> {
        if let Some(last) = &self.event_type
            && last.as_bytes() == raw
        {
            return Ok(last.clone());
        }
        let text = std::str::from_utf8(raw).map_err(|_| corrupt("an event type is not UTF-8"))?;
        let shared = SharedStr::from(text);
        self.event_type = Some(shared.clone());
        Ok(shared)
    }

    fn known(slot: &mut Option<SharedStr>, text: &str) -> SharedStr {
        slot.get_or_insert_with(|| SharedStr::from(text)).clone()
    }
}

fn decode_event(
    reader: &mut Reader<'_>,
    bytes_at: &impl Fn(usize, usize) -> Bytes,
    strings: &mut Strings,
    head: &FrameHead,
    index: u64,
) -> Result<RecordedEvent, Error> {
    let id = uuid::Uuid::from_slice(reader.bytes(16)?).map_err(|_| corrupt("bad event id"))?;
    let schema_version = reader.u32()?;
    let content_type_code = reader.u8()?;
    let tag_count = reader.u8()?;
    let type_len = reader.u16()? as usize;
    let data_len = reader.u32()? as usize;
    let metadata_len = reader.u32()? as usize;
    let content_type = match content_type_code {
        CONTENT_TYPE_JSON_CODE => Strings::known(&mut strings.json, CONTENT_TYPE_JSON),
        CONTENT_TYPE_BYTES_CODE => Strings::known(&mut strings.bytes, CONTENT_TYPE_BYTES),
        CONTENT_TYPE_CUSTOM => {
            let len = reader.u16()? as usize;
            SharedStr::from(reader.string(len)?)
        }
        other => return Err(corrupt(format!("unknown content type code {other}"))),
    };
    let event_type = strings.event_type(reader.bytes(type_len)?)?;
    let data = reader.field(bytes_at, data_len)?;
    let metadata = reader.field(bytes_at, metadata_len)?;
    let mut tags = Vec::with_capacity(tag_count as usize);
    for _ in 0..tag_count {
        let len = reader.u8()? as usize;
        tags.push(reader.string(len)?);
    }
    Ok(RecordedEvent {
        id: EventId(id),
        stream: head.stream.clone(),
        revision: head.first_revision + index,
        position: Position(head.first_position + index),
        event_type,
        schema_version,
        content_type,
        data,
        metadata,
        tags,
        recorded_at: head.recorded_at,
    })
}

/// The id and type of every event of a checked frame, without copying data: what recovery
/// and indexing need.
pub fn decode_frame_ids(frame: &[u8]) -> Result<(FrameHead, Vec<(EventId, bool)>), Error> {
    let events = decode_frame(frame)?;
    // Recovery and sealing are not hot paths; reuse the full decoder so there is one parser.
    let head = decode_frame_head(frame)?;
    let ids = events
        .iter()
        .map(|event| {
            (
                event.id,
                event.event_type == factum_core::rules::STREAM_DELETED_EVENT_TYPE,
            )
        })
        .collect();
    Ok((head, ids))
}

/// A bounds-checked cursor over bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], offset: usize) -> Reader<'a> {
        Reader { bytes, offset }
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], Error> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt("a field runs past the end of its frame"))?;
        let slice = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(slice)
    }

    /// The next `len` bytes, made into `Bytes` by `bytes_at` once they are known to be there.
    fn field(
        &mut self,
        bytes_at: &impl Fn(usize, usize) -> Bytes,
        len: usize,
    ) -> Result<Bytes, Error> {
        let start = self.offset;
        self.bytes(len)?;
        Ok(bytes_at(start, len))
    }

    fn string(&mut self, len: usize) -> Result<String, Error> {
        let bytes = self.bytes(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("a text field is not UTF-8"))
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(
            self.bytes(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(
            self.bytes(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }
}

/// Reads a little-endian u32 at `offset`; the caller has checked the length.
pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

/// Reads a little-endian u64 at `offset`; the caller has checked the length.
pub(crate) fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

pub(crate) fn corrupt(detail: impl Into<String>) -> Error {
    Error::Corrupt {
        detail: detail.into(),
    }
}

const _: () = assert!(BODY_FIXED_LEN == 32 && EVENT_FIXED_LEN == 32);
