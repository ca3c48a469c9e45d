//! A size-rotated log file: `mozaiks.log`, then `mozaiks.log.1` (newest)
//! to `mozaiks.log.<keep>` (oldest), the oldest deleted on each rotation.
//!
//! Size-based rather than daily: a quiet server keeps its history and a
//! busy one cannot fill the disk, whatever the traffic. Lines are written
//! whole, so a line never straddles two files and every file parses as
//! JSON lines on its own.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The current file's name inside the logs directory.
pub(crate) const LOG_FILE: &str = "mozaiks.log";

/// A log file that rotates when it would exceed `max_bytes`.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

impl RotatingFile {
    /// Opens (appends to) `dir/mozaiks.log`, creating `dir`.
    pub(crate) fn open(dir: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(1),
            keep,
            file,
            written,
        })
    }

    fn rotated(&self, n: usize) -> PathBuf {
        self.dir.join(format!("{LOG_FILE}.{n}"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            fs::remove_file(self.dir.join(LOG_FILE))?;
        } else {
            let _ = fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(self.dir.join(LOG_FILE), self.rotated(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.written = 0;
        Ok(())
    }

    /// Writes one whole line (which must end in `\n`), rotating first if
    /// it would not fit.
    pub(crate) fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if self.written > 0 && self.written + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.written += len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_only_the_newest_files() {
        let dir = std::env::temp_dir().join(format!("mozaiks-rotate-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut file = RotatingFile::open(&dir, 20, 2).unwrap();
        for i in 0..5 {
            file.write_line(format!("line number {i}\n").as_bytes())
                .unwrap();
        }
        let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(read(LOG_FILE), "line number 4\n");
        assert_eq!(read("mozaiks.log.1"), "line number 3\n");
        assert_eq!(read("mozaiks.log.2"), "line number 2\n");
        assert!(!dir.join("mozaiks.log.3").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
