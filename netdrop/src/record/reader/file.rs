//! Opening a recording file: only a regular file is read. A FIFO would block
//! (or feed anything), a device such as /dev/zero never ends, a directory or a
//! socket is no recording: each is refused before a byte is read, with one
//! line saying what the path is.

use std::{
    fs::{File, Metadata, OpenOptions},
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

use anyhow::{Context, Result, anyhow};

use super::{Reader, open_stream};
use crate::record::Header;

/// What follows "not a regular file (…)" in the refusal.
pub const NOT_A_FILE: &str = "a recording is a file written by netdrop record";

/// Opens the recording at `path` and checks its preamble and header (see
/// [`open_stream`]); refuses anything but a regular file without reading it.
///
/// The type is checked twice: by path before opening (opening some devices
/// has effects of its own) and on the opened file (the path may have been
/// replaced in between). The open is non-blocking, so a FIFO put there in
/// between cannot block it either.
pub fn open_file(path: &Path) -> Result<(Header, Reader<File>)> {
    let reading = || format!("reading the recording {}", path.display());
    let meta = std::fs::metadata(path).with_context(reading)?;
    regular(path, &meta)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(reading)?;
    let meta = file.metadata().with_context(reading)?;
    regular(path, &meta)?;
    blocking(&file).with_context(reading)?;
    open_stream(file, Some(meta.len())).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `Err` naming what `path` is, unless it is a regular file.
fn regular(path: &Path, meta: &Metadata) -> Result<()> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of another type"
    };
    Err(anyhow!(
        "{}: not a regular file ({what}): {NOT_A_FILE}",
        path.display()
    ))
}

/// Clears O_NONBLOCK again (a regular file ignores it; this keeps reads plain).
fn blocking(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function's caller owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
