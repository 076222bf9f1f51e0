//! The demo's directory: a named one, kept, or a temporary one removed when the demo ends.

use std::path::{Path, PathBuf};

use crate::error::{ExampleError, Result};

/// Where the demo keeps its store (`events/`) and its SQLite read models.
///
/// A named directory must be missing or empty (the demo refuses to mix its accounts into
/// someone else's data) and is kept; without a name, a fresh directory under the system's
/// temporary directory is made and removed on drop.
///
/// ```
/// use factum_example_bank::DemoDir;
///
/// let dir = DemoDir::new(None)?;
/// let path = dir.path().to_path_buf();
/// assert!(path.is_dir());
/// drop(dir);
/// assert!(!path.exists());
/// # Ok::<(), factum_example_bank::ExampleError>(())
/// ```
#[derive(Debug)]
pub struct DemoDir {
    /// The directory.
    path: PathBuf,
    /// Whether drop removes it.
    temporary: bool,
}

impl DemoDir {
    /// The named directory (created if missing; refused with
    /// [`ExampleError::DirectoryNotEmpty`] if it holds anything), or a fresh temporary one.
    pub fn new(named: Option<&Path>) -> Result<DemoDir> {
        let Some(path) = named else {
            return DemoDir::temporary();
        };
        let empty = match std::fs::read_dir(path) {
            Ok(mut entries) => entries.next().is_none(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => true,
            Err(error) => {
                return Err(ExampleError::io(
                    format!("cannot read {}", path.display()),
                    error,
                ));
            }
        };
        if !empty {
            return Err(ExampleError::DirectoryNotEmpty(path.to_path_buf()));
        }
        std::fs::create_dir_all(path).map_err(|error| {
            ExampleError::io(format!("cannot create {}", path.display()), error)
        })?;
        Ok(DemoDir {
            path: path.to_path_buf(),
            temporary: false,
        })
    }

    /// A fresh directory under the system's temporary directory, removed on drop.
    pub fn temporary() -> Result<DemoDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let path = std::env::temp_dir().join(format!("factum-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|error| {
            ExampleError::io(
                format!("cannot create the temporary directory {}", path.display()),
                error,
            )
        })?;
        Ok(DemoDir {
            path,
            temporary: true,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        if self.temporary {
            // Best effort: a leftover in the temporary directory is harmless.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named data directory that holds something is refused before anything is written.
    #[test]
    fn a_used_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("something"), b"x").unwrap();
        let refused = DemoDir::new(Some(dir.path()));
        assert!(
            matches!(&refused, Err(ExampleError::DirectoryNotEmpty(path)) if path == dir.path()),
            "{refused:?}"
        );
        let fresh = DemoDir::new(Some(&dir.path().join("fresh"))).unwrap();
        assert!(fresh.path().is_dir());
        drop(fresh);
        assert!(
            dir.path().join("fresh").is_dir(),
            "a named directory is kept"
        );
    }

    /// The temporary directory is removed when the demo ends.
    #[test]
    fn the_temporary_directory_is_removed() {
        let dir = DemoDir::new(None).unwrap();
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
    }
}
