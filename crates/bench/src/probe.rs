//! The fsync probe: what the disk under the data directory gives one writer that appends 256
//! bytes and calls `fdatasync`, in a loop. Every append workload is bounded by it, so the bench
//! measures it before and after and reports both.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;

/// The bytes appended before each `fdatasync`.
const PROBE_WRITE_BYTES: usize = 256;

/// Appends 256 bytes and `fdatasync`s a fresh file named `name` in `dir` for `duration`, then
/// removes the file; returns the syncs per second.
pub async fn fsync_per_s(dir: &Path, name: &str, duration: Duration) -> anyhow::Result<f64> {
    let path = dir.join(name);
    tokio::task::spawn_blocking(move || {
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot create the fsync probe file {}", path.display()))?;
        let block = [b'p'; PROBE_WRITE_BYTES];
        let start = Instant::now();
        let mut syncs = 0u64;
        while start.elapsed() < duration || syncs == 0 {
            file.write_all(&block)?;
            file.sync_data()?;
            syncs += 1;
        }
        let elapsed = start.elapsed();
        drop(file);
        std::fs::remove_file(&path)?;
        Ok(syncs as f64 / elapsed.as_secs_f64())
    })
    .await?
}

/// Whether two probes agree: they differ by at most 25 % of the smaller one.
pub fn stable(before: f64, after: f64) -> bool {
    (before - after).abs() <= 0.25 * before.min(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_within_a_quarter_of_each_other_are_stable() {
        assert!(stable(1000.0, 1250.0));
        assert!(stable(1250.0, 1000.0));
        assert!(!stable(1000.0, 1300.0));
        assert!(!stable(300.0, 3000.0));
    }

    #[tokio::test]
    async fn the_probe_syncs_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let rate = fsync_per_s(dir.path(), "probe", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(rate > 0.0);
        assert!(!dir.path().join("probe").exists());
    }
}
