//! The file store of the token cache: `tokens.json` in the cache folder, 0600. A file that
//! group or others can read is refused; writes go through a create-new 0600 temporary file,
//! synced and renamed into place (see the module docs of [`super`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use super::{Cache, CacheError, CacheFile, parse};

impl Cache {
    /// Reads `tokens.json`; a missing file is an empty cache, a file others can read is
    /// refused.
    pub(super) fn read_file(&self) -> Result<CacheFile, CacheError> {
        let path = self.path();
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheFile::default()),
            Err(e) => return Err(self.io("read", path)(e)),
        };
        let meta = file.metadata().map_err(self.io("read", path.clone()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CacheError::Insecure { path, mode });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(self.io("read", path.clone()))?;
        parse(&bytes).map_err(|reason| CacheError::Corrupt { path, reason })
    }

    /// Writes the whole document atomically: into a create-new 0600 temporary file in the
    /// same folder, synced, then renamed over `path`, so a reader sees the old or the new file.
    pub(super) fn write_file(&self, path: &Path, body: &[u8]) -> Result<(), CacheError> {
        let tmp = self
            .dir
            .join(format!(".tokens.json.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(body)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CacheError::Io {
                action: "write",
                path: path.to_owned(),
                source: e,
            }
        })
    }
}
