//! Opening a log directory: find the segments, check every record, cut a torn tail.

use std::{
    fs::{self, File, OpenOptions},
    io::{BufReader, Read, Seek, SeekFrom},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    format::{
        FRAME_PREFIX_LEN, HEADER_LEN, SEGMENT_MAGIC, check_body_len, parse_body, parse_prefix,
        parse_segment_file_name, segment_file_name,
    },
    index::{Index, Segment},
};
use crate::OpenError;

/// Buffer for the sequential scan of a segment.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

/// What [`recover`] found.
pub(crate) struct Recovered {
    pub(crate) index: Index,
    /// File length of the last segment (its records and any zero-filled space after them).
    pub(crate) allocated: u64,
    /// Bytes cut off the last segment.
    pub(crate) torn_bytes: u64,
}

/// Scans every segment in `dir`, cutting a torn tail off the last one; creates the first segment
/// of a new log.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, OpenError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(OpenError::io(dir))? {
        let path = entry.map_err(OpenError::io(dir))?.path();
        if let Some(base) = parse_segment_file_name(&path) {
            bases.push(base);
        }
    }
    bases.sort_unstable();

    if bases.is_empty() {
        let segment =
            create_segment(dir, 0).map_err(OpenError::io(dir.join(segment_file_name(0))))?;
        return Ok(Recovered {
            index: Index {
                segments: vec![segment],
            },
            allocated: HEADER_LEN,
            torn_bytes: 0,
        });
    }

    let mut index = Index::default();
    let mut torn_bytes = 0;
    let mut allocated = 0;
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(segment_file_name(base));
        let expected = index.segments.last().map_or(0, |s| s.end);
        if base != expected {
            return Err(OpenError::Corrupt {
                segment: path,
                position: 0,
                reason: if i == 0 {
                    "the first segment does not start at offset 0 (segments are missing)"
                } else {
                    "segment does not start where the previous one ends (segments are missing)"
                },
            });
        }
        let last = i + 1 == bases.len();
        let file = OpenOptions::new()
            .read(true)
            .write(last)
            .open(&path)
            .map_err(OpenError::io(&path))?;
        let scanned = scan_segment(path, file, base, last)?;
        torn_bytes += scanned.cut;
        allocated = scanned.file_len;
        index.segments.push(scanned.segment);
    }
    Ok(Recovered {
        index,
        allocated,
        torn_bytes,
    })
}

/// Syncs [`create_segment`] does: the file (header and size) and the directory.
pub(crate) const SYNCS_PER_SEGMENT: u64 = 2;

/// Creates an empty segment whose first record will be `base`, durably: the header is synced and
/// so is the directory entry, so a crash never leaves acknowledged records in a file that has no
/// name.
pub(crate) fn create_segment(dir: &Path, base: u64) -> std::io::Result<Segment> {
    let path = dir.join(segment_file_name(base));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all_at(&SEGMENT_MAGIC, 0)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Segment::empty(base, path, Arc::new(file)))
}

/// Syncs to disk a directory's entries (a created or removed file).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment checked by [`scan_segment`].
struct Scanned {
    segment: Segment,
    /// Bytes cut off its end.
    cut: u64,
    /// Its file length after the scan.
    file_len: u64,
}

/// Checks every record of one segment. In the last segment, records end where a frame does not
/// check out: if only zeros follow, that is the writer's zero-filled space; otherwise it is a torn
/// write (bytes after the last fsync that never reached the disk whole), which is cut. Anywhere
/// else either is an error.
fn scan_segment(path: PathBuf, file: File, base: u64, last: bool) -> Result<Scanned, OpenError> {
    let file_len = file.metadata().map_err(OpenError::io(&path))?.len();

    let mut header = [0u8; HEADER_LEN as usize];
    let header_ok = file_len >= HEADER_LEN && {
        file.read_exact_at(&mut header, 0)
            .map_err(OpenError::io(&path))?;
        header == SEGMENT_MAGIC
    };
    if !header_ok {
        // The header is synced before any record is written, so a bad header is only a crash
        // while the segment was being created if the file holds nothing else.
        let fresh = last
            && (file_len < HEADER_LEN
                || all_zero(&file, 0, file_len).map_err(OpenError::io(&path))?);
        if !fresh {
            let reason = if file_len < HEADER_LEN {
                "segment shorter than its header"
            } else {
                "bad segment header (not a ddnsd log segment, or a newer format)"
            };
            return Err(OpenError::Corrupt {
                segment: path,
                position: 0,
                reason,
            });
        }
        (|| {
            file.set_len(0)?;
            file.write_all_at(&SEGMENT_MAGIC, 0)?;
            file.sync_all()
        })()
        .map_err(OpenError::io(&path))?;
        report_cut(&path, 0, file_len, "segment header never reached the disk");
        let segment = Segment::empty(base, path, Arc::new(file));
        return Ok(Scanned {
            segment,
            cut: file_len,
            file_len: HEADER_LEN,
        });
    }

    let mut segment = Segment::empty(base, path, Arc::new(file));
    let file = Arc::clone(&segment.file);
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, &*file);
    reader
        .seek(SeekFrom::Start(HEADER_LEN))
        .map_err(OpenError::io(&segment.path))?;
    let mut body = Vec::new();
    let damage = loop {
        let pos = segment.len;
        let remaining = file_len - pos;
        if remaining == 0 {
            break None;
        }
        if remaining < FRAME_PREFIX_LEN as u64 {
            break Some("short record prefix");
        }
        let mut prefix = [0u8; FRAME_PREFIX_LEN];
        reader
            .read_exact(&mut prefix)
            .map_err(OpenError::io(&segment.path))?;
        let (body_len, crc) = parse_prefix(prefix);
        let body_len = match check_body_len(body_len, remaining - FRAME_PREFIX_LEN as u64) {
            Ok(len) => len,
            Err(reason) => break Some(reason),
        };
        body.resize(body_len, 0);
        reader
            .read_exact(&mut body)
            .map_err(OpenError::io(&segment.path))?;
        match parse_body(&body, crc) {
            Err(reason) => break Some(reason),
            Ok(record) if record.offset != segment.end => {
                break Some("record offset out of sequence");
            }
            Ok(_) => segment.push((FRAME_PREFIX_LEN + body_len) as u64),
        }
    };
    drop(reader);

    let Some(reason) = damage else {
        return Ok(Scanned {
            segment,
            cut: 0,
            file_len,
        });
    };
    let pos = segment.len;
    if !last {
        return Err(OpenError::Corrupt {
            segment: segment.path,
            position: pos,
            reason,
        });
    }
    if all_zero(&file, pos, file_len).map_err(OpenError::io(&segment.path))? {
        return Ok(Scanned {
            segment,
            cut: 0,
            file_len,
        });
    }
    (|| {
        file.set_len(pos)?;
        file.sync_all()
    })()
    .map_err(OpenError::io(&segment.path))?;
    report_cut(&segment.path, pos, file_len - pos, reason);
    Ok(Scanned {
        segment,
        cut: file_len - pos,
        file_len: pos,
    })
}

/// Logs and counts a torn tail cut off on open: the one place that reports it.
fn report_cut(path: &Path, position: u64, bytes: u64, reason: &'static str) {
    tracing::warn!(
        segment = %path.display(),
        position,
        bytes_cut = bytes,
        reason,
        "cut a torn tail off the log (records never acknowledged as durable)"
    );
    metrics::counter!("ddns_log_torn_bytes_cut_total").increment(bytes);
}

/// Whether bytes `pos..len` of `file` are all zero.
fn all_zero(file: &File, mut pos: u64, len: u64) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    while pos < len {
        let n = usize::try_from(len - pos)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        file.read_exact_at(&mut buf[..n], pos)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        pos += n as u64;
    }
    Ok(true)
}
