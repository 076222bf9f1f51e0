//! Stream indexes: where each revision of each stream is, per segment.
//!
//! The open segment's index lives in memory ([`ActiveIndex`]) and is rebuilt from the segment
//! on open. When a segment fills, its index is written once to `segment-N.idx`
//! ([`write_index`]) and from then on read on demand with positioned reads ([`SealedIndex`]),
//! so memory does not grow with the number of events and reopening does not rescan history.
//!
//! ```text
//! index file = header (128 bytes) | stream rows | entries | frame map | names
//!
//! header:
//!   0   [u8; 8] magic "FACTUMIX"
//!   8   u32     format version
//!   12  u32     reserved, 0
//!   16  u64     segment number
//!   24  u64     first position of the segment
//!   32  u64     last position of the segment
//!   40  u64     segment length in bytes (header and frames)
//!   48  u64     stream count
//!   56  u64     entry count
//!   64  u64     frame map count
//!   72  u64     offset of the stream rows
//!   80  u64     offset of the entries
//!   88  u64     offset of the frame map
//!   96  u64     offset of the names
//!   104 u32     crc32 of the frame map
//!   108 [u8;16] reserved, 0
//!   124 u32     crc32 of bytes 0..124
//!
//! stream row (48 bytes), sorted by (hash, name):
//!   0   u64 hash of the stream name (FNV-1a 64)
//!   8   u64 index of the stream's first entry
//!   16  u64 entry count
//!   24  u64 offset of the name in the names section
//!   32  u16 name length
//!   34  u16 reserved, 0
//!   36  u32 crc32 of the stream's entries
//!   40  u32 reserved, 0
//!   44  u32 crc32 of bytes 0..44
//!
//! entry (24 bytes), grouped by stream, by revision:
//!   0   u64 revision
//!   8   u64 position
//!   16  u32 offset of the event's frame in the segment
//!   20  u32 flags (bit 0: the event is a tombstone marker)
//!
//! frame map entry (16 bytes), the first frame at or after every ANCHOR_STRIDE_BYTES of the
//! segment, by position (the segment's first frame always has one):
//!   0   u64 first position of the frame
//!   8   u64 offset of the frame in the segment
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use factum_core::{Error, StreamName};

use crate::format::{FORMAT_VERSION, corrupt, read_u32, read_u64};
use crate::storage::{Storage, StorageFile};

const INDEX_MAGIC: [u8; 8] = *b"FACTUMIX";
const INDEX_HEADER_LEN: usize = 128;
const ROW_LEN: usize = 48;
const ENTRY_LEN: usize = 24;
const FRAME_MAP_ENTRY_LEN: usize = 16;
/// A frame map entry (an anchor) is kept for the first frame at or after every this many bytes
/// of a segment: a seek by position reads at most this much (plus one frame) to find its frame.
pub const ANCHOR_STRIDE_BYTES: u64 = 64 * 1024;
const FLAG_TOMBSTONE: u32 = 1;

const _: () = assert!(INDEX_HEADER_LEN == 128 && ROW_LEN == 48 && ENTRY_LEN == 24);

/// Where one revision of a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The event's revision.
    pub revision: u64,
    /// The event's global position.
    pub position: u64,
    /// The byte offset of the frame holding the event, in its segment.
    pub frame_offset: u32,
    /// Whether the event is a tombstone marker (always a stream's last event).
    pub tombstone: bool,
}

impl IndexEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.revision.to_le_bytes());
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&self.frame_offset.to_le_bytes());
        let flags = if self.tombstone { FLAG_TOMBSTONE } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
    }

    /// Decodes one entry; `bytes` holds at least [`ENTRY_LEN`] bytes.
    fn decode(bytes: &[u8]) -> Result<IndexEntry, Error> {
        let flags = read_u32(bytes, 20);
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(corrupt("index entry has unknown flags"));
        }
        Ok(IndexEntry {
            revision: read_u64(bytes, 0),
            position: read_u64(bytes, 8),
            frame_offset: read_u32(bytes, 16),
            tombstone: flags & FLAG_TOMBSTONE != 0,
        })
    }
}

/// The stable 64-bit hash of a stream name that index files are sorted by (FNV-1a).
pub fn stream_hash(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The index of the open segment, in memory.
#[derive(Debug, Default, Clone)]
pub struct ActiveIndex {
    /// Each stream's entries in this segment, by revision.
    pub streams: HashMap<StreamName, Vec<IndexEntry>>,
    /// Anchors for seeking by position: (first position, offset) of the first frame at or
    /// after every [`ANCHOR_STRIDE_BYTES`], by position.
    pub anchors: Vec<(u64, u64)>,
    /// The last frame: (first position, offset).
    pub last_frame: Option<(u64, u64)>,
}

impl ActiveIndex {
    /// Records one frame of `count` events of `stream`.
    pub fn add_frame(
        &mut self,
        stream: &StreamName,
        first_position: u64,
        first_revision: u64,
        offset: u64,
        tombstones: impl Iterator<Item = bool>,
    ) {
        let frame_offset = u32::try_from(offset).expect("segments are smaller than 4 GiB");
        let entries = self.streams.entry(stream.clone()).or_default();
        for (index, tombstone) in (0u64..).zip(tombstones) {
            entries.push(IndexEntry {
                revision: first_revision + index,
                position: first_position + index,
                frame_offset,
                tombstone,
            });
        }
        let anchor_due = self
            .anchors
            .last()
            .is_none_or(|(_, anchor_offset)| offset >= anchor_offset + ANCHOR_STRIDE_BYTES);
        if anchor_due {
            self.anchors.push((first_position, offset));
        }
        self.last_frame = Some((first_position, offset));
    }
}

/// Writes the index of a full segment to `name` through a temporary file, durably: write,
/// fsync, rename, fsync the directory. A crash leaves either no index (rebuilt on open from the
/// segment) or the whole one.
pub fn write_index(
    storage: &dyn Storage,
    name: &str,
    segment_number: u64,
    first_position: u64,
    last_position: u64,
    segment_len: u64,
    index: &ActiveIndex,
) -> Result<(), Error> {
    let mut streams: Vec<(&StreamName, &Vec<IndexEntry>)> = index.streams.iter().collect();
    streams.sort_by(|a, b| {
        (stream_hash(a.0.as_str()), a.0.as_str()).cmp(&(stream_hash(b.0.as_str()), b.0.as_str()))
    });
    let entry_count: usize = streams.iter().map(|(_, entries)| entries.len()).sum();
    let frame_map = &index.anchors;
    let rows_offset = INDEX_HEADER_LEN;
    let entries_offset = rows_offset + streams.len() * ROW_LEN;
    let frame_map_offset = entries_offset + entry_count * ENTRY_LEN;
    let names_offset = frame_map_offset + frame_map.len() * FRAME_MAP_ENTRY_LEN;

    let mut rows = Vec::with_capacity(streams.len() * ROW_LEN);
    let mut entries = Vec::with_capacity(entry_count * ENTRY_LEN);
    let mut names = Vec::new();
    for (stream, stream_entries) in &streams {
        let first_entry = entries.len() / ENTRY_LEN;
        let start = entries.len();
        for entry in stream_entries.iter() {
            entry.encode(&mut entries);
        }
        let mut row = [0u8; ROW_LEN];
        row[0..8].copy_from_slice(&stream_hash(stream.as_str()).to_le_bytes());
        row[8..16].copy_from_slice(&(first_entry as u64).to_le_bytes());
        row[16..24].copy_from_slice(&(stream_entries.len() as u64).to_le_bytes());
        row[24..32].copy_from_slice(&(names.len() as u64).to_le_bytes());
        row[32..34].copy_from_slice(&(stream.as_str().len() as u16).to_le_bytes());
        row[36..40].copy_from_slice(&crc32fast::hash(&entries[start..]).to_le_bytes());
        let row_crc = crc32fast::hash(&row[0..44]);
        row[44..48].copy_from_slice(&row_crc.to_le_bytes());
        rows.extend_from_slice(&row);
        names.extend_from_slice(stream.as_str().as_bytes());
    }
    let mut map = Vec::with_capacity(frame_map.len() * FRAME_MAP_ENTRY_LEN);
    for (position, offset) in frame_map {
        map.extend_from_slice(&position.to_le_bytes());
        map.extend_from_slice(&offset.to_le_bytes());
    }

    let mut header = [0u8; INDEX_HEADER_LEN];
    header[0..8].copy_from_slice(&INDEX_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let fields = [
        segment_number,
        first_position,
        last_position,
        segment_len,
        streams.len() as u64,
        entry_count as u64,
        frame_map.len() as u64,
        rows_offset as u64,
        entries_offset as u64,
        frame_map_offset as u64,
        names_offset as u64,
    ];
    for (slot, value) in fields.iter().enumerate() {
        let at = 16 + slot * 8;
        header[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    header[104..108].copy_from_slice(&crc32fast::hash(&map).to_le_bytes());
    let header_crc = crc32fast::hash(&header[0..124]);
    header[124..128].copy_from_slice(&header_crc.to_le_bytes());

    let mut bytes = Vec::with_capacity(names_offset + names.len());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&rows);
    bytes.extend_from_slice(&entries);
    bytes.extend_from_slice(&map);
    bytes.extend_from_slice(&names);

    let temporary = format!("{name}.tmp");
    let file = storage.open(&temporary, true)?;
    file.set_len(0)?;
    file.write_all_at(&bytes, 0)?;
    file.sync_data()?;
    storage.rename(&temporary, name)?;
    storage.sync_dir()?;
    Ok(())
}

/// A sealed segment's index, read on demand.
pub struct SealedIndex {
    file: Arc<dyn StorageFile>,
    /// The segment's number.
    pub segment_number: u64,
    /// The segment's first position.
    pub first_position: u64,
    /// The segment's last position.
    pub last_position: u64,
    /// The segment's length in bytes.
    pub segment_len: u64,
    stream_count: u64,
    entry_count: u64,
    frame_map_count: u64,
    rows_offset: u64,
    entries_offset: u64,
    frame_map_offset: u64,
    names_offset: u64,
    frame_map_crc: u32,
    /// The index file's length, to bound every offset read from it.
    file_len: u64,
    /// Which streams the segment may hold, built from the rows on the first lookup.
    filter: std::sync::OnceLock<StreamFilter>,
}

/// A Bloom filter over the name hashes of the streams one full segment holds. A lookup of a
/// stream the filter rules out skips the segment's index: most streams are absent from most
/// segments, and so is the metadata stream of every stream that never had metadata, which every
/// stream read looks up. About 10 bits a stream, 1 % false positives.
pub struct StreamFilter {
    words: Vec<u64>,
}

impl StreamFilter {
    const BITS_PER_STREAM: u64 = 10;
    const PROBES: u64 = 7;

    /// An empty filter sized for `streams` streams.
    pub fn with_capacity(streams: u64) -> StreamFilter {
        let bits = streams.saturating_mul(Self::BITS_PER_STREAM).max(64);
        StreamFilter {
            words: vec![0; bits.div_ceil(64) as usize],
        }
    }

    /// The bits a hash sets: double hashing from two halves of a remixed hash.
    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> + use<> {
        let bit_count = self.words.len() as u64 * 64;
        let mixed = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let (first, step) = (mixed, (mixed >> 32) | 1);
        (0..Self::PROBES).map(move |probe| first.wrapping_add(probe.wrapping_mul(step)) % bit_count)
    }

    /// Adds a stream by its name hash.
    pub fn insert(&mut self, hash: u64) {
        for bit in self.probes(hash) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether a stream with this name hash may be in the segment (false: it is not).
    pub fn may_contain(&self, hash: u64) -> bool {
        self.probes(hash)
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

/// A stream's run of entries in a sealed segment.
#[derive(Debug, Clone, Copy)]
struct StreamRow {
    first_entry: u64,
    entry_count: u64,
    entries_crc: u32,
}

impl SealedIndex {
    /// Opens an index file and checks its header (and that it fits the file).
    pub fn open(file: Arc<dyn StorageFile>) -> Result<SealedIndex, Error> {
        let mut header = [0u8; INDEX_HEADER_LEN];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| corrupt("index file is shorter than its header"))?;
        SealedIndex::decode_header(&header, file.len()?, file)
    }

    fn decode_header(
        header: &[u8; INDEX_HEADER_LEN],
        file_len: u64,
        file: Arc<dyn StorageFile>,
    ) -> Result<SealedIndex, Error> {
        if header[0..8] != INDEX_MAGIC {
            return Err(corrupt("not a Factum index file (bad magic)"));
        }
        if crc32fast::hash(&header[0..124]) != read_u32(header, 124) {
            return Err(corrupt("index header checksum mismatch"));
        }
        let version = read_u32(header, 8);
        if version == 0 || version > FORMAT_VERSION {
            return Err(corrupt(format!(
                "index file has unsupported format version {version}"
            )));
        }
        let field = |slot: usize| read_u64(header, 16 + slot * 8);
        let index = SealedIndex {
            file,
            segment_number: field(0),
            first_position: field(1),
            last_position: field(2),
            segment_len: field(3),
            stream_count: field(4),
            entry_count: field(5),
            frame_map_count: field(6),
            rows_offset: field(7),
            entries_offset: field(8),
            frame_map_offset: field(9),
            names_offset: field(10),
            frame_map_crc: read_u32(header, 104),
            file_len,
            filter: std::sync::OnceLock::new(),
        };
        let sections_fit = index
            .stream_count
            .checked_mul(ROW_LEN as u64)
            .and_then(|len| index.rows_offset.checked_add(len))
            .is_some_and(|end| end == index.entries_offset)
            && index
                .entry_count
                .checked_mul(ENTRY_LEN as u64)
                .and_then(|len| index.entries_offset.checked_add(len))
                .is_some_and(|end| end == index.frame_map_offset)
            && index
                .frame_map_count
                .checked_mul(FRAME_MAP_ENTRY_LEN as u64)
                .and_then(|len| index.frame_map_offset.checked_add(len))
                .is_some_and(|end| end == index.names_offset)
            && index.rows_offset == INDEX_HEADER_LEN as u64
            && index.names_offset <= file_len;
        if !sections_fit
            || index.first_position == 0
            || index.last_position < index.first_position
            || index.entry_count != index.last_position - index.first_position + 1
        {
            return Err(corrupt("index header describes sections that do not fit"));
        }
        Ok(index)
    }

    /// The entries of `stream` in this segment, by revision (empty if it has none).
    pub fn entries(&self, stream: &StreamName) -> Result<Vec<IndexEntry>, Error> {
        let Some(row) = self.find_row(stream)? else {
            return Ok(Vec::new());
        };
        let len = usize::try_from(row.entry_count)
            .ok()
            .and_then(|count| count.checked_mul(ENTRY_LEN))
            .ok_or_else(|| corrupt("index row entry count is out of range"))?;
        let mut bytes = vec![0u8; len];
        let offset = self.entries_offset + row.first_entry * ENTRY_LEN as u64;
        self.file.read_exact_at(&mut bytes, offset)?;
        if crc32fast::hash(&bytes) != row.entries_crc {
            return Err(corrupt(format!(
                "index entries of stream {stream} fail their checksum"
            )));
        }
        bytes
            .chunks_exact(ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect()
    }

    /// The last entry of `stream` in this segment, if it has any.
    pub fn last_entry(&self, stream: &StreamName) -> Result<Option<IndexEntry>, Error> {
        // Reading the whole run keeps one checked path; runs are bounded by the segment size.
        Ok(self.entries(stream)?.last().copied())
    }

    /// The frame map: the anchors of [`ActiveIndex::anchors`], as written when sealing.
    pub fn frame_map(&self) -> Result<Vec<(u64, u64)>, Error> {
        let len = usize::try_from(self.frame_map_count)
            .ok()
            .and_then(|count| count.checked_mul(FRAME_MAP_ENTRY_LEN))
            .ok_or_else(|| corrupt("index frame map count is out of range"))?;
        let mut bytes = vec![0u8; len];
        self.file.read_exact_at(&mut bytes, self.frame_map_offset)?;
        if crc32fast::hash(&bytes) != self.frame_map_crc {
            return Err(corrupt("index frame map fails its checksum"));
        }
        Ok(bytes
            .chunks_exact(FRAME_MAP_ENTRY_LEN)
            .map(|chunk| (read_u64(chunk, 0), read_u64(chunk, 8)))
            .collect())
    }

    fn read_row(&self, index: u64) -> Result<(u64, [u8; ROW_LEN]), Error> {
        let mut row = [0u8; ROW_LEN];
        self.file
            .read_exact_at(&mut row, self.rows_offset + index * ROW_LEN as u64)?;
        if crc32fast::hash(&row[0..44]) != read_u32(&row, 44) {
            return Err(corrupt("index stream row fails its checksum"));
        }
        Ok((read_u64(&row, 0), row))
    }

    /// Binary search by hash, then a check of the names with that hash.
    /// The segment's stream filter, built from all its rows (one read) the first time.
    fn filter(&self) -> Result<&StreamFilter, Error> {
        if let Some(filter) = self.filter.get() {
            return Ok(filter);
        }
        let len = usize::try_from(self.stream_count)
            .ok()
            .and_then(|count| count.checked_mul(ROW_LEN))
            .ok_or_else(|| corrupt("index stream count is out of range"))?;
        let mut rows = vec![0u8; len];
        self.file.read_exact_at(&mut rows, self.rows_offset)?;
        let mut filter = StreamFilter::with_capacity(self.stream_count);
        for row in rows.chunks_exact(ROW_LEN) {
            if crc32fast::hash(&row[0..44]) != read_u32(row, 44) {
                return Err(corrupt("index stream row fails its checksum"));
            }
            filter.insert(read_u64(row, 0));
        }
        Ok(self.filter.get_or_init(|| filter))
    }

    fn find_row(&self, stream: &StreamName) -> Result<Option<StreamRow>, Error> {
        let hash = stream_hash(stream.as_str());
        if !self.filter()?.may_contain(hash) {
            return Ok(None);
        }
        let (mut low, mut high) = (0u64, self.stream_count);
        // Bounded: the range halves on every step.
        while low < high {
            let middle = low + (high - low) / 2;
            if self.read_row(middle)?.0 < hash {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let mut candidate = low;
        while candidate < self.stream_count {
            let (row_hash, row) = self.read_row(candidate)?;
            if row_hash != hash {
                break;
            }
            let name_len = u16::from_le_bytes([row[32], row[33]]) as usize;
            let mut name = vec![0u8; name_len];
            let name_offset = self
                .names_offset
                .checked_add(read_u64(&row, 24))
                .filter(|offset| {
                    offset
                        .checked_add(name_len as u64)
                        .is_some_and(|end| end <= self.file_len)
                })
                .ok_or_else(|| corrupt("index stream row points past the names"))?;
            self.file.read_exact_at(&mut name, name_offset)?;
            if stream_hash(&String::from_utf8_lossy(&name)) != row_hash {
                return Err(corrupt("index stream name does not match its hash"));
            }
            if name == stream.as_str().as_bytes() {
                let first_entry = read_u64(&row, 8);
                let entry_count = read_u64(&row, 16);
                if first_entry
                    .checked_add(entry_count)
                    .is_none_or(|end| end > self.entry_count)
                {
                    return Err(corrupt("index row points past the entries"));
                }
                return Ok(Some(StreamRow {
                    first_entry,
                    entry_count,
                    entries_crc: read_u32(&row, 36),
                }));
            }
            candidate += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_filter_has_no_false_negatives_and_few_false_positives() {
        let mut filter = StreamFilter::with_capacity(1000);
        for n in 0..1000 {
            filter.insert(stream_hash(&format!("account-{n}")));
        }
        assert!((0..1000).all(|n| filter.may_contain(stream_hash(&format!("account-{n}")))));
        let false_positives = (0..10_000)
            .filter(|n| filter.may_contain(stream_hash(&format!("$$account-{n}"))))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} false positives in 10,000"
        );
    }

    #[test]
    fn fnv_hash_is_stable() {
        // Index files on disk depend on these values never changing.
        assert_eq!(stream_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stream_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
