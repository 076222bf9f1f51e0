//! Segments: naming, reading frames, and the recovery scan of a segment's frames.

use std::sync::{Arc, OnceLock};

use factum_core::{Error, RecordedEvent};

use crate::format::{
    FRAME_HEADER_LEN, FrameCheck, FrameDecoder, FrameHead, SEGMENT_HEADER_LEN, SegmentHeader,
    check_frame, corrupt, decode_frame, read_u32,
};
use crate::index::SealedIndex;
use crate::storage::StorageFile;

/// How much a sequential scan reads at once.
const SCAN_CHUNK_BYTES: usize = 1024 * 1024;

/// The file name of segment `number`.
pub fn segment_file_name(number: u64) -> String {
    format!("segment-{number:010}.log")
}

/// The file name of segment `number`'s index.
pub fn index_file_name(number: u64) -> String {
    format!("segment-{number:010}.idx")
}

/// The segment number in a segment or index file name, and whether it is an index.
pub fn parse_file_name(name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix("segment-")?;
    let (number, is_index) = match (rest.strip_suffix(".log"), rest.strip_suffix(".idx")) {
        (Some(number), _) => (number, false),
        (_, Some(number)) => (number, true),
        _ => return None,
    };
    if number.len() != 10 || !number.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, is_index))
}

/// A segment that is full: its frames never change again and its index is on disk.
pub struct SealedSegment {
    /// The segment file.
    pub file: Arc<dyn StorageFile>,
    /// Its index.
    pub index: SealedIndex,
    /// The frame map, read on first use.
    frame_map: OnceLock<Vec<(u64, u64)>>,
}

impl SealedSegment {
    /// A sealed segment from its file and index.
    pub fn new(file: Arc<dyn StorageFile>, index: SealedIndex) -> SealedSegment {
        SealedSegment {
            file,
            index,
            frame_map: OnceLock::new(),
        }
    }

    /// The frame map (anchors for seeking by position), read once.
    pub fn frame_map(&self) -> Result<&[(u64, u64)], Error> {
        if let Some(map) = self.frame_map.get() {
            return Ok(map);
        }
        let map = self.index.frame_map()?;
        Ok(self.frame_map.get_or_init(|| map))
    }
}

/// Reads and checks the frame at `offset` of `file`.
pub fn read_frame(file: &dyn StorageFile, offset: u64) -> Result<Vec<u8>, Error> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut header, offset)?;
    let body_len = read_u32(&header, 4) as usize;
    let mut frame = vec![0u8; FRAME_HEADER_LEN + body_len.min(crate::format::FRAME_BODY_LEN_MAX)];
    frame[..FRAME_HEADER_LEN].copy_from_slice(&header);
    file.read_exact_at(
        &mut frame[FRAME_HEADER_LEN..],
        offset + FRAME_HEADER_LEN as u64,
    )?;
    match check_frame(&frame)? {
        FrameCheck::Complete(len) if len == frame.len() => Ok(frame),
        _ => Err(corrupt(format!("frame at offset {offset} is incomplete"))),
    }
}

/// Reads and decodes the events of the frame at `offset`.
pub fn read_frame_events(file: &dyn StorageFile, offset: u64) -> Result<Vec<RecordedEvent>, Error> {
    decode_frame(&read_frame(file, offset)?)
}

/// Walks the frames of a file sequentially, reading it in large chunks.
pub struct FrameCursor<'a> {
    file: &'a dyn StorageFile,
    /// Where the readable bytes end.
    end: u64,
    /// The offset of the next frame.
    offset: u64,
    /// The bytes read last, reused for every chunk.
    buffer: Vec<u8>,
    /// The file offset of `buffer[0]`.
    buffer_offset: u64,
}

impl<'a> FrameCursor<'a> {
    /// A cursor over the frames between `start` and `end` (offsets at frame boundaries).
    pub fn new(file: &'a dyn StorageFile, start: u64, end: u64) -> FrameCursor<'a> {
        FrameCursor {
            file,
            end,
            offset: start,
            buffer: Vec::new(),
            buffer_offset: start,
        }
    }

    /// The offset of the next frame: after the last one returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next whole, checksummed frame and its offset; `None` at the end. Fails with
    /// `Corrupt` on a bad frame or one that runs past the end.
    pub fn next_frame(&mut self) -> Result<Option<(u64, &[u8])>, Error> {
        if self.offset >= self.end {
            return Ok(None);
        }
        // Bounded: the first refill reads at least the frame's header, so the second knows the
        // frame's length and reads it whole (frames may be larger than a chunk).
        for _ in 0..3 {
            let start = (self.offset - self.buffer_offset) as usize;
            let rest = self.buffer.get(start..).unwrap_or(&[]);
            match check_frame(rest)? {
                FrameCheck::Complete(len) => {
                    let frame_offset = self.offset;
                    self.offset += len as u64;
                    return Ok(Some((frame_offset, &self.buffer[start..start + len])));
                }
                FrameCheck::Incomplete => {
                    let available = self.end - self.offset;
                    if rest.len() as u64 >= available {
                        break;
                    }
                    let want = (needed_len(rest).max(SCAN_CHUNK_BYTES) as u64).min(available);
                    self.buffer.resize(want as usize, 0);
                    self.file.read_exact_at(&mut self.buffer, self.offset)?;
                    self.buffer_offset = self.offset;
                }
            }
        }
        Err(corrupt(format!(
            "frame at offset {} runs past the end of the readable bytes",
            self.offset
        )))
    }
}

/// The length of the frame starting `bytes`, if its header is there; otherwise a header's.
fn needed_len(bytes: &[u8]) -> usize {
    if bytes.len() < FRAME_HEADER_LEN {
        return FRAME_HEADER_LEN;
    }
    FRAME_HEADER_LEN + read_u32(bytes, 4) as usize
}

/// What the recovery scan found in a segment.
pub struct ScannedSegment {
    /// The header.
    pub header: SegmentHeader,
    /// Each whole frame: its head, offset, and which of its events are tombstone markers.
    pub frames: Vec<(FrameHead, u64, Vec<bool>)>,
    /// Where the last whole frame ends: everything after is a torn tail.
    pub valid_len: u64,
    /// The file's length before any truncation.
    pub file_len: u64,
}

/// Scans a segment from its header: every frame is checked (length, checksum, decoding, and
/// positions continuing from `header.first_position`). The scan stops at the first frame that
/// fails: `valid_len` is where the intact prefix ends.
pub fn scan_segment(file: &dyn StorageFile) -> Result<ScannedSegment, Error> {
    let file_len = file.len()?;
    let mut header_bytes = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut header_bytes, 0)
        .map_err(|_| corrupt("segment is shorter than its header"))?;
    let header = SegmentHeader::decode(&header_bytes)?;
    let mut frames = Vec::new();
    let mut next_position = header.first_position;
    let mut cursor = FrameCursor::new(file, SEGMENT_HEADER_LEN as u64, file_len);
    let mut decoder = FrameDecoder::default();
    // Bounded: each step consumes a frame of a finite file.
    while let Ok(Some((offset, frame))) = cursor.next_frame() {
        let Ok(head) = decoder.head(frame) else {
            return Ok(ScannedSegment {
                header,
                frames,
                valid_len: offset,
                file_len,
            });
        };
        let Ok(events) = decoder.events(frame, &head) else {
            return Ok(ScannedSegment {
                header,
                frames,
                valid_len: offset,
                file_len,
            });
        };
        if head.first_position != next_position {
            return Ok(ScannedSegment {
                header,
                frames,
                valid_len: offset,
                file_len,
            });
        }
        let tombstones = events
            .iter()
            .map(|event| event.event_type == factum_core::rules::STREAM_DELETED_EVENT_TYPE)
            .collect();
        next_position += u64::from(head.event_count);
        frames.push((head, offset, tombstones));
    }
    let valid_len = frames
        .last()
        .map_or(SEGMENT_HEADER_LEN as u64, |(_, offset, _)| {
            // The cursor stopped after the last whole frame, or at a bad one.
            *offset
        });
    let valid_len = if frames.is_empty() {
        valid_len
    } else {
        end_of_last_frame(file, valid_len)?
    };
    Ok(ScannedSegment {
        header,
        frames,
        valid_len,
        file_len,
    })
}

/// The offset just past the (already checked) frame at `offset`.
fn end_of_last_frame(file: &dyn StorageFile, offset: u64) -> Result<u64, Error> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    file.read_exact_at(&mut header, offset)?;
    Ok(offset + FRAME_HEADER_LEN as u64 + u64::from(read_u32(&header, 4)))
}
