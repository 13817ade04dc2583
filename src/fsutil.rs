//! Small file helpers for secrets kept on disk.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to a new file at `path` readable by the owner only (mode 0600), creating its
/// folder, and syncs it so a generated secret survives a crash.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
