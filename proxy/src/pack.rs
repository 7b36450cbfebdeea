//! What a `git push` over smart HTTP carries: the ref updates (pkt-lines before the pack) and
//! the objects of the pack, inflated so the secret scanner sees file contents rather than zlib
//! streams. Bounded: a pack that inflates past the limit, or that cannot be parsed, cannot be
//! scanned and so must not leave.

use flate2::{Decompress, FlushDecompress, Status};

/// Bytes all objects of one push may inflate to.
pub const MAX_INFLATED: usize = 64 << 20;

/// One ref update of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// The old object id (all zeros: the ref is created).
    pub old: String,
    /// The new object id (all zeros: the ref is deleted).
    pub new: String,
    /// The full ref name (`refs/heads/main`).
    pub name: String,
}

impl RefUpdate {
    /// Whether the update deletes the ref.
    pub fn deletes(&self) -> bool {
        self.new.bytes().all(|b| b == b'0')
    }
}

/// A parsed push.
#[derive(Debug, Default)]
pub struct Push {
    /// The ref updates.
    pub updates: Vec<RefUpdate>,
    /// Each object's content (blobs, trees, commits, tags) or delta data, inflated.
    pub objects: Vec<Vec<u8>>,
}

/// Why a push could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Not the receive-pack request format.
    #[error("malformed push request: {0}")]
    Malformed(&'static str),
    /// Inflating past [`MAX_INFLATED`].
    #[error("the pushed pack inflates past {MAX_INFLATED} bytes")]
    TooLarge,
}

fn hex4(b: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(b).ok()?;
    usize::from_str_radix(s, 16).ok()
}

/// Parses a `git-receive-pack` request body.
pub fn parse(body: &[u8]) -> Result<Push, PackError> {
    let mut push = Push::default();
    let mut at = 0usize;
    // Commands: pkt-lines up to a flush (0000).
    loop {
        let len = body
            .get(at..at + 4)
            .and_then(hex4)
            .ok_or(PackError::Malformed("a pkt-line length"))?;
        if len == 0 {
            at += 4;
            break;
        }
        if len < 4 {
            return Err(PackError::Malformed("a pkt-line length"));
        }
        let line = body
            .get(at + 4..at + len)
            .ok_or(PackError::Malformed("a truncated pkt-line"))?;
        at += len;
        // "old new ref\0capabilities\n" (capabilities on the first line only).
        let line = line.split(|b| *b == 0).next().unwrap_or_default();
        let text = String::from_utf8_lossy(line);
        let mut parts = text.trim_end_matches('\n').split(' ');
        let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            // push-options and shallow lines carry no ref update.
            continue;
        };
        if old.len() < 40 || new.len() < 40 {
            continue;
        }
        push.updates.push(RefUpdate {
            old: old.to_owned(),
            new: new.to_owned(),
            name: name.to_owned(),
        });
    }
    let rest = body.get(at..).unwrap_or_default();
    if rest.is_empty() {
        // A push that only deletes refs sends no pack.
        return Ok(push);
    }
    if rest.get(..4) != Some(b"PACK") {
        return Err(PackError::Malformed("the pack signature"));
    }
    let count = rest
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_be_bytes(b) as usize)
        .ok_or(PackError::Malformed("the pack header"))?;
    let mut pos = 12usize;
    let mut inflated = 0usize;
    for _ in 0..count {
        // Type and size: a varint, the type in bits 4-6 of the first byte.
        let mut byte = *rest
            .get(pos)
            .ok_or(PackError::Malformed("an object header"))?;
        pos += 1;
        let kind = (byte >> 4) & 7;
        let mut size = usize::from(byte & 0x0f);
        let mut shift = 4u32;
        while byte & 0x80 != 0 {
            byte = *rest
                .get(pos)
                .ok_or(PackError::Malformed("an object header"))?;
            pos += 1;
            if shift > 56 {
                return Err(PackError::Malformed("an object size"));
            }
            size |= usize::from(byte & 0x7f) << shift;
            shift += 7;
        }
        match kind {
            1..=4 => {}
            // OFS_DELTA: a base offset varint.
            6 => loop {
                let b = *rest
                    .get(pos)
                    .ok_or(PackError::Malformed("a delta offset"))?;
                pos += 1;
                if b & 0x80 == 0 {
                    break;
                }
            },
            // REF_DELTA: the base object's id.
            7 => pos += 20,
            _ => return Err(PackError::Malformed("an object type")),
        }
        if size > MAX_INFLATED || inflated + size > MAX_INFLATED {
            return Err(PackError::TooLarge);
        }
        let input = rest.get(pos..).ok_or(PackError::Malformed("object data"))?;
        let mut out = Vec::with_capacity(size);
        let mut z = Decompress::new(true);
        let status = z
            .decompress_vec(input, &mut out, FlushDecompress::Finish)
            .map_err(|_| PackError::Malformed("object data that does not inflate"))?;
        if status != Status::StreamEnd || out.len() != size {
            return Err(PackError::Malformed("object data of the wrong size"));
        }
        pos += usize::try_from(z.total_in()).map_err(|_| PackError::TooLarge)?;
        inflated += out.len();
        push.objects.push(out);
    }
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pushes_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"zzzz",
            b"0003",
            b"0009abc",
            b"0000PACK",
            b"0000PACK\0\0\0\x02\0\0\0\x01\xff",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // A delete-only push has no pack.
        let zero = "0".repeat(40);
        let line = format!("{zero} {zero} refs/heads/gone\0report-status\n");
        let body = format!("{:04x}{line}0000", line.len() + 4);
        let push = parse(body.as_bytes()).unwrap();
        assert_eq!(push.updates.len(), 1);
        assert!(push.updates[0].deletes());
    }
}
