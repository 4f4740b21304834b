//! Private files written atomically (the kubeconfig, the pinned server settings), and the
//! terminal prompt the CLI uses to ask before doing something the user may not expect.
//!
//! # Security
//! - A file is written into a temporary file **created new** (`O_CREAT|O_EXCL`, mode 0600)
//!   under a random name (128 bits from the OS's CSPRNG) in the target's own folder, synced,
//!   then renamed over the target. `O_EXCL` never follows a symlink planted at the temporary
//!   name, and the random name cannot be guessed ahead of time, so another local user who can
//!   write into the folder (a shared `/tmp` `KUBECONFIG`, a group-writable `~/.kube`) cannot make
//!   gatehouse write the kubeconfig's credentials into a file of their choosing, nor truncate
//!   one of the user's files. A name that exists already is never reused (another random name is
//!   drawn); a failed write removes its temporary file.
//! - A prompt is only shown when both stdin and stderr are terminals; otherwise the caller gets
//!   `None` and must refuse with an error that names the flag to use instead. A prompt never
//!   defaults to yes.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

use crate::cli::error::CliError;

/// A temporary name beside `path`: `.NAME.gatehouse-<32 hex>.tmp`.
fn temp_name(path: &Path) -> std::io::Result<PathBuf> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system's random number generator failed"))?;
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.gatehouse-{suffix}.tmp")))
}

/// Writes `body` to `path` atomically with mode 0600, through a create-new temporary file with
/// a random name in the same folder (see the module's Security section). Creates the folder
/// when missing.
pub fn write_private(path: &Path, body: &[u8]) -> Result<(), CliError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::io(format!("cannot create {}", dir.display()), e))?;
    }
    let fail = |e: std::io::Error| CliError::io(format!("cannot write {}", path.display()), e);
    // A clash with an existing name (planted or left over) draws another name.
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = temp_name(path).map_err(fail)?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
            }
            Err(e) => return Err(fail(e)),
        }
    };
    let written = file
        .write_all(body)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail(e)
    })
}

/// Whether the user can be asked: stdin and stderr are both terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on the terminal (`[y/N]`, default no). `None` when there is no
/// terminal to ask on: the caller refuses with an error naming the flag that answers yes.
pub fn confirm(question: &str) -> Option<bool> {
    if !interactive() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => Some(false),
        Ok(_) => Some(matches!(
            line.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn temp_dir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("gatehouse-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn temp_names_are_random_and_beside_the_target() {
        let a = temp_name(Path::new("/d/config")).unwrap();
        let b = temp_name(Path::new("/d/config")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), Some(Path::new("/d")));
        let n = a.file_name().unwrap().to_str().unwrap();
        assert!(
            n.starts_with(".config.gatehouse-") && n.ends_with(".tmp"),
            "{n}"
        );
    }

    #[test]
    fn write_private_is_0600_and_leaves_no_temporary_file() {
        let dir = temp_dir("mode");
        let path = dir.join("config");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
