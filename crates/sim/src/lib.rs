//! A simulated disk for the embedded engine: [`SimStorage`] implements
//! [`factum_log::storage::Storage`] in memory and models what a real disk with a page cache
//! keeps when the power goes out, so tests can crash the engine at any I/O operation and check
//! what it recovers.
//!
//! # The model
//!
//! - **Files.** Every file has *durable* content (what survives a power loss) and *current*
//!   content (what reads see: the page cache). Writes and `set_len` change the current content
//!   at once and are remembered, in order, as the file's *unsynced changes*.
//!   [`StorageFile::sync_data`] makes the current content (and size) durable and forgets the
//!   unsynced changes.
//! - **The directory.** File creations, renames and removals change the current names at once
//!   and are remembered, in order, as the directory's unsynced changes. [`Storage::sync_dir`]
//!   makes the current names durable. Until then a created file, a rename or a removal may be
//!   undone by a crash. A file's data and its name are independent: a file whose data was synced
//!   but whose creation was not can vanish whole.
//! - **A crash** ([`SimStorage::crash`]) builds the disk a power loss could leave: the durable
//!   names plus a random prefix of the unsynced directory changes, and for each file its
//!   durable content plus a random prefix of its unsynced changes, where the first change left
//!   out may instead be *torn* if it is a write: a random prefix of its bytes lands, and the rest
//!   of its range is left alone, zero-filled, or filled with garbage up to a random length (a
//!   size update that got ahead of the data). Nothing that was synced is ever lost; nothing is
//!   reordered (journalling file systems keep metadata in order, and the engine never relies on
//!   data reaching the disk before an fsync). Sector-level reordering inside one unsynced range
//!   is not modelled.
//! - **A clean restart** ([`SimStorage::restart`]) is a process that died while the machine
//!   stayed up: the page cache survives, so files read as they did, and what was unsynced is
//!   still unsynced (a later crash may still lose it).
//! - **Faults** ([`Faults`]), counted from the moment they are set:
//!   - crash after the Nth *mutating* operation (an `open` that may create, `write_all_at`,
//!     `set_len`, `sync_data`, `rename`, `remove`, `sync_dir`): that operation and every later
//!     one, reads included, fail with an I/O error ("the machine is gone"); a crashing write
//!     may leave a random prefix of its bytes in the page cache, which a later
//!     [`SimStorage::crash`] may keep or tear;
//!   - fail the Nth `sync_data` with `EIO`: nothing becomes durable, and the file's unsynced
//!     changes stay unsynced (like Linux after a failed writeback: the page cache still shows
//!     them, the disk may not have them);
//!   - fail the Nth `write_all_at` with `ENOSPC`, after a random prefix of its bytes (maybe
//!     none) went into the page cache, as a short write would.
//! - **Determinism.** Every random choice comes from one seeded [`Rng`]. A workload that issues
//!   its operations in a fixed order replays exactly from its seed; with concurrent writers the
//!   fault plan replays but the interleaving (and so the group commits) may differ.
//!
//! Mutating operations are the ones counted because they are where a crash changes what the
//! disk holds; reads never do.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use factum_log::storage::{Storage, StorageFile};

/// `ENOSPC`: no space left on device.
pub const ENOSPC: i32 = 28;
/// `EIO`: an input/output error, what a failed fsync answers.
pub const EIO: i32 = 5;

/// A tiny seeded pseudo-random generator (SplitMix64): deterministic, good enough for fault
/// plans and test data, and free of dependencies.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 if `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        // The modulo bias is irrelevant for test plans of small bounds.
        self.next_u64() % bound
    }

    /// A number in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        assert!(low <= high, "an empty range");
        low + self.below(high - low + 1)
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Faults to inject, each counted from the moment [`SimStorage::set_faults`] is called. `Some(n)`
/// means the nth operation of that kind (1-based) fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// After this many mutating operations succeed, the machine crashes: the next operation and
    /// every later one fail. `Some(0)` crashes at the very next mutating operation.
    pub crash_after_ops: Option<u64>,
    /// The nth `sync_data` fails with `EIO`.
    pub fail_sync_data: Option<u64>,
    /// The nth `write_all_at` fails with `ENOSPC` after writing a random prefix.
    pub fail_write: Option<u64>,
}

/// One change to a file not yet made durable.
#[derive(Debug, Clone)]
enum FileChange {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// One change to the directory not yet made durable.
#[derive(Debug, Clone)]
enum DirChange {
    Create { name: String, inode: usize },
    Rename { from: String, to: String },
    Remove { name: String },
}

/// A file's contents, independent of its names.
#[derive(Debug, Clone, Default)]
struct Inode {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    /// The changes from `durable` to `current`, oldest first.
    unsynced: Vec<FileChange>,
}

/// The fault plan in absolute counts (operations since the disk was made).
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    crash_at_op: Option<u64>,
    fail_sync_at: Option<u64>,
    fail_write_at: Option<u64>,
}

#[derive(Debug)]
struct Disk {
    rng: Rng,
    /// Every file ever created, by inode number; unreferenced ones are simply unreachable.
    inodes: Vec<Inode>,
    /// The names reads see.
    names: BTreeMap<String, usize>,
    /// The names that survive a crash.
    durable_names: BTreeMap<String, usize>,
    /// The changes from `durable_names` to `names`, oldest first.
    dir_unsynced: Vec<DirChange>,
    /// Mutating operations so far (including failed ones).
    ops: u64,
    syncs: u64,
    writes: u64,
    plan: Plan,
    crashed: bool,
    /// A description of every mutating operation, when tracing.
    trace: Option<Vec<String>>,
}

impl Disk {
    fn new(seed: u64) -> Disk {
        Disk {
            rng: Rng::new(seed),
            inodes: Vec::new(),
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dir_unsynced: Vec::new(),
            ops: 0,
            syncs: 0,
            writes: 0,
            plan: Plan::default(),
            crashed: false,
            trace: None,
        }
    }

    fn check_alive(&self) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        Ok(())
    }

    /// Counts a mutating operation; fails (and crashes the disk) if the plan says so.
    fn mutating(&mut self, describe: impl FnOnce() -> String) -> io::Result<()> {
        self.check_alive()?;
        self.ops += 1;
        if let Some(trace) = &mut self.trace {
            trace.push(format!("#{} {}", self.ops, describe()));
        }
        if self.plan.crash_at_op.is_some_and(|at| self.ops >= at) {
            self.crashed = true;
            return Err(crashed_error());
        }
        Ok(())
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the machine lost power")
}

fn apply(content: &mut Vec<u8>, change: &FileChange) {
    match change {
        FileChange::Write { offset, bytes } => write_into(content, *offset, bytes),
        FileChange::SetLen(len) => content.resize(*len as usize, 0),
    }
}

fn write_into(content: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let offset = offset as usize;
    let end = offset + bytes.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[offset..end].copy_from_slice(bytes);
}

/// An in-memory disk with a page cache, crashes and faults: see the crate documentation.
///
/// Clones share the same disk.
#[derive(Debug, Clone)]
pub struct SimStorage {
    disk: Arc<Mutex<Disk>>,
}

impl SimStorage {
    /// An empty disk whose random choices follow `seed`.
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            disk: Arc::new(Mutex::new(Disk::new(seed))),
        }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms `faults`, counted from now; replaces any earlier plan.
    pub fn set_faults(&self, faults: Faults) {
        let mut disk = self.disk();
        disk.plan = Plan {
            crash_at_op: faults.crash_after_ops.map(|n| disk.ops + n + 1),
            fail_sync_at: faults.fail_sync_data.map(|n| disk.syncs + n),
            fail_write_at: faults.fail_write.map(|n| disk.writes + n),
        };
    }

    /// Whether the machine has crashed (every operation now fails).
    pub fn is_crashed(&self) -> bool {
        self.disk().crashed
    }

    /// How many mutating operations were issued so far.
    pub fn op_count(&self) -> u64 {
        self.disk().ops
    }

    /// Starts recording a line per mutating operation (see [`SimStorage::take_trace`]).
    pub fn start_trace(&self) {
        self.disk().trace = Some(Vec::new());
    }

    /// The operations recorded since [`SimStorage::start_trace`], each `"#N what"` with `N` its
    /// number since the disk was made.
    pub fn take_trace(&self) -> Vec<String> {
        self.disk().trace.take().unwrap_or_default()
    }

    /// The names of the files, as reads see them, sorted.
    pub fn file_names(&self) -> Vec<String> {
        self.disk().names.keys().cloned().collect()
    }

    /// The current content of file `name` (what a read sees), if it exists. Works after a
    /// crash too: it is for tests to inspect.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let disk = self.disk();
        let inode = *disk.names.get(name)?;
        Some(disk.inodes[inode].current.clone())
    }

    /// Whether every file's content and every name is durable (nothing a crash could lose).
    pub fn is_all_synced(&self) -> bool {
        let disk = self.disk();
        disk.dir_unsynced.is_empty()
            && disk
                .names
                .values()
                .all(|inode| disk.inodes[*inode].unsynced.is_empty())
    }

    /// Pulls the plug: this disk crashes (every later operation on it fails) and the returned
    /// disk holds what a real one could hold after the power loss (see the crate
    /// documentation), with no faults armed and everything on it durable.
    pub fn crash(&self) -> SimStorage {
        let mut disk = self.disk();
        disk.crashed = true;
        let mut rng = Rng::new(disk.rng.next_u64());

        let mut names = disk.durable_names.clone();
        let kept = rng.below(disk.dir_unsynced.len() as u64 + 1) as usize;
        for change in &disk.dir_unsynced[..kept] {
            match change {
                DirChange::Create { name, inode } => {
                    names.insert(name.clone(), *inode);
                }
                DirChange::Rename { from, to } => {
                    if let Some(inode) = names.remove(from) {
                        names.insert(to.clone(), inode);
                    }
                }
                DirChange::Remove { name } => {
                    names.remove(name);
                }
            }
        }

        let mut fresh = Disk::new(rng.next_u64());
        let mut renumbered: BTreeMap<usize, usize> = BTreeMap::new();
        for (name, inode) in &names {
            // Two names of one inode stay one file (no engine does this, but be exact).
            let number = match renumbered.get(inode) {
                Some(number) => *number,
                None => {
                    let content = survivor(&disk.inodes[*inode], &mut rng);
                    fresh.inodes.push(Inode {
                        durable: content.clone(),
                        current: content,
                        unsynced: Vec::new(),
                    });
                    let number = fresh.inodes.len() - 1;
                    renumbered.insert(*inode, number);
                    number
                }
            };
            fresh.names.insert(name.clone(), number);
        }
        fresh.durable_names = fresh.names.clone();
        SimStorage {
            disk: Arc::new(Mutex::new(fresh)),
        }
    }

    /// A disk like this one after a clean restart of the process (no power loss): the page
    /// cache survives, so every file reads as it does now; no faults are armed. This disk is
    /// left as it is.
    pub fn restart(&self) -> SimStorage {
        let disk = self.disk();
        let mut fresh = Disk::new(disk.rng.clone().next_u64());
        fresh.inodes = disk.inodes.clone();
        fresh.names = disk.names.clone();
        fresh.durable_names = disk.durable_names.clone();
        fresh.dir_unsynced = disk.dir_unsynced.clone();
        SimStorage {
            disk: Arc::new(Mutex::new(fresh)),
        }
    }
}

/// What a crash leaves of one file: durable content, a prefix of the unsynced changes, and
/// maybe a torn part of the next write.
fn survivor(inode: &Inode, rng: &mut Rng) -> Vec<u8> {
    let mut content = inode.durable.clone();
    let kept = rng.below(inode.unsynced.len() as u64 + 1) as usize;
    for change in &inode.unsynced[..kept] {
        apply(&mut content, change);
    }
    if let Some(FileChange::Write { offset, bytes }) = inode.unsynced.get(kept)
        && !bytes.is_empty()
        && rng.chance(1, 2)
    {
        let landed = rng.below(bytes.len() as u64) as usize;
        write_into(&mut content, *offset, &bytes[..landed]);
        let rest = bytes.len() - landed;
        let extra = rng.range(0, rest as u64) as usize;
        let at = *offset + landed as u64;
        match rng.below(3) {
            0 => {}
            1 => write_into(&mut content, at, &vec![0u8; extra]),
            _ => write_into(&mut content, at, &rng.bytes(extra)),
        }
    }
    content
}

impl Storage for SimStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut disk = self.disk();
        if create {
            disk.mutating(|| format!("open+create {name}"))?;
        } else {
            disk.check_alive()?;
        }
        let inode = match disk.names.get(name) {
            Some(inode) => *inode,
            None if create => {
                disk.inodes.push(Inode::default());
                let inode = disk.inodes.len() - 1;
                disk.names.insert(name.to_owned(), inode);
                disk.dir_unsynced.push(DirChange::Create {
                    name: name.to_owned(),
                    inode,
                });
                inode
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no file {name}"),
                ));
            }
        };
        Ok(Arc::new(SimFile {
            disk: self.disk.clone(),
            inode,
            name: name.to_owned(),
        }))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let disk = self.disk();
        disk.check_alive()?;
        Ok(disk.names.keys().cloned().collect())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutating(|| format!("rename {from} -> {to}"))?;
        let inode = disk
            .names
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {from}")))?;
        disk.names.insert(to.to_owned(), inode);
        disk.dir_unsynced.push(DirChange::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        });
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutating(|| format!("remove {name}"))?;
        disk.names
            .remove(name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")))?;
        disk.dir_unsynced.push(DirChange::Remove {
            name: name.to_owned(),
        });
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutating(|| "sync_dir".to_owned())?;
        disk.durable_names = disk.names.clone();
        disk.dir_unsynced.clear();
        Ok(())
    }
}

/// An open file of a [`SimStorage`]: it follows its inode, whatever its name becomes.
struct SimFile {
    disk: Arc<Mutex<Disk>>,
    inode: usize,
    /// The name it was opened by, for traces.
    name: String,
}

impl SimFile {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let disk = self.disk();
        disk.check_alive()?;
        let content = &disk.inodes[self.inode].current;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(content.len());
        let len = buf.len().min(content.len() - start);
        buf[..len].copy_from_slice(&content[start..start + len]);
        Ok(len)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut disk = self.disk();
        let was_alive = !disk.crashed;
        let result = disk.mutating(|| format!("write {} @{offset} +{}", self.name, buf.len()));
        if result.is_err() {
            // The write was in flight when the power went: part of it may be in the page cache.
            if was_alive && !buf.is_empty() {
                let landed = disk.rng.below(buf.len() as u64) as usize;
                write_unsynced(&mut disk.inodes[self.inode], offset, &buf[..landed]);
            }
            return result;
        }
        disk.writes += 1;
        if disk.plan.fail_write_at == Some(disk.writes) {
            // A short write, then no space: the prefix stays in the page cache.
            let landed = disk.rng.below(buf.len() as u64 + 1) as usize;
            write_unsynced(&mut disk.inodes[self.inode], offset, &buf[..landed]);
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        write_unsynced(&mut disk.inodes[self.inode], offset, buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutating(|| format!("sync_data {}", self.name))?;
        disk.syncs += 1;
        if disk.plan.fail_sync_at == Some(disk.syncs) {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let inode = &mut disk.inodes[self.inode];
        inode.durable = inode.current.clone();
        inode.unsynced.clear();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let disk = self.disk();
        disk.check_alive()?;
        Ok(disk.inodes[self.inode].current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        disk.mutating(|| format!("set_len {} {len}", self.name))?;
        let inode = &mut disk.inodes[self.inode];
        let change = FileChange::SetLen(len);
        apply(&mut inode.current, &change);
        inode.unsynced.push(change);
        Ok(())
    }
}

fn write_unsynced(inode: &mut Inode, offset: u64, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let change = FileChange::Write {
        offset,
        bytes: bytes.to_vec(),
    };
    apply(&mut inode.current, &change);
    inode.unsynced.push(change);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(storage: &SimStorage, name: &str, bytes: &[u8], offset: u64) -> Arc<dyn StorageFile> {
        let file = storage.open(name, true).expect("opens");
        file.write_all_at(bytes, offset).expect("writes");
        file
    }

    #[test]
    fn synced_data_and_names_survive_every_crash() {
        for seed in 0..200 {
            let storage = SimStorage::new(seed);
            let file = write(&storage, "a", b"hello", 0);
            file.sync_data().expect("syncs");
            storage.sync_dir().expect("syncs the directory");
            file.write_all_at(b" world", 5).expect("writes");
            let after = storage.crash();
            let content = after.contents("a").expect("a synced name survives");
            assert_eq!(
                &content[..5],
                b"hello",
                "seed {seed}: synced bytes are kept"
            );
            assert!(
                content.len() <= 11,
                "seed {seed}: nothing past the last write"
            );
            assert!(after.is_all_synced());
        }
    }

    #[test]
    fn unsynced_creation_may_vanish_and_sometimes_survives() {
        let (mut vanished, mut survived) = (0, 0);
        for seed in 0..200 {
            let storage = SimStorage::new(seed);
            let file = write(&storage, "a", b"x", 0);
            file.sync_data().expect("syncs");
            match storage.crash().contents("a") {
                None => vanished += 1,
                Some(content) => {
                    assert_eq!(content, b"x", "seed {seed}: its data was synced");
                    survived += 1;
                }
            }
        }
        assert!(
            vanished > 0 && survived > 0,
            "{vanished} vanished, {survived} survived"
        );
    }

    #[test]
    fn a_crash_keeps_prefixes_of_unsynced_writes_and_sometimes_tears_them() {
        let mut shapes = std::collections::BTreeSet::new();
        for seed in 0..300 {
            let storage = SimStorage::new(seed);
            let file = write(&storage, "a", b"", 0);
            file.sync_data().expect("syncs");
            storage.sync_dir().expect("syncs the directory");
            file.write_all_at(b"aaaa", 0).expect("writes");
            file.write_all_at(b"bbbb", 4).expect("writes");
            let content = storage
                .crash()
                .contents("a")
                .expect("a synced name survives");
            let whole = b"aaaabbbb";
            let prefix = content
                .iter()
                .zip(whole)
                .take_while(|(got, want)| got == want)
                .count();
            shapes.insert((content.len(), prefix == content.len()));
            assert!(content.len() <= 8, "seed {seed}: {content:?}");
        }
        assert!(shapes.contains(&(0, true)), "everything lost sometimes");
        assert!(shapes.contains(&(8, true)), "everything kept sometimes");
        assert!(
            shapes
                .iter()
                .any(|(len, clean)| *len > 0 && *len < 8 && *clean),
            "a clean partial prefix sometimes: {shapes:?}"
        );
    }

    #[test]
    fn faults_fire_at_their_count() {
        let storage = SimStorage::new(1);
        let file = write(&storage, "a", b"1", 0);
        storage.set_faults(Faults {
            fail_sync_data: Some(2),
            fail_write: Some(2),
            ..Faults::default()
        });
        file.sync_data().expect("the first sync works");
        let error = file.sync_data().expect_err("the second sync fails");
        assert_eq!(error.raw_os_error(), Some(EIO));
        file.write_all_at(b"2", 1).expect("the first write works");
        let error = file
            .write_all_at(b"3", 2)
            .expect_err("the second write fails");
        assert_eq!(error.raw_os_error(), Some(ENOSPC));

        storage.set_faults(Faults {
            crash_after_ops: Some(1),
            ..Faults::default()
        });
        file.sync_data().expect("one more operation works");
        assert!(file.set_len(0).is_err(), "the next one crashes");
        assert!(storage.is_crashed());
        assert!(storage.list().is_err(), "reads fail after a crash too");
    }

    #[test]
    fn a_rename_before_a_directory_sync_may_be_undone() {
        let (mut old, mut new) = (0, 0);
        for seed in 0..100 {
            let storage = SimStorage::new(seed);
            let file = write(&storage, "x.tmp", b"index", 0);
            file.sync_data().expect("syncs");
            storage.sync_dir().expect("syncs the directory");
            storage.rename("x.tmp", "x").expect("renames");
            let after = storage.crash();
            match (after.contents("x.tmp"), after.contents("x")) {
                (Some(content), None) => {
                    assert_eq!(content, b"index");
                    old += 1;
                }
                (None, Some(content)) => {
                    assert_eq!(content, b"index");
                    new += 1;
                }
                other => panic!("seed {seed}: one name or the other, got {other:?}"),
            }
        }
        assert!(old > 0 && new > 0);
    }
}
