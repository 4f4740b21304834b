//! A spinner on stderr while waiting for the browser or the device sign-in; only on a
//! terminal, so logs and pipes get plain lines and no control characters.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

/// A running spinner; stopped and its line cleared on drop.
#[derive(Debug)]
pub struct Spinner {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner with `message` when stderr is a terminal (inside a tokio runtime).
    pub fn start(message: String) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { task: None };
        }
        let task = tokio::spawn(async move {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let mut i = 0usize;
            loop {
                {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{} {message}", FRAMES[i % FRAMES.len()]);
                    let _ = err.flush();
                }
                i = i.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        });
        Self { task: Some(task) }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let mut err = std::io::stderr().lock();
            // Clear the spinner's line.
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
