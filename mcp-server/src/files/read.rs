//! Reading files: whole, by line range, byte-bounded, several at once.

use super::{DEFAULT_READ_BYTES, MAX_FILE_BYTES, ReadArgs, ReadManyArgs, open_read, read_fd};
use crate::error::ToolError;
use crate::guard::Guard;
use crate::output::{ReadManyItem, ReadManyOut, ReadOut};
use crate::paths::normalise;
use crate::workspace::{Workspace, digest};

/// `read_file`.
pub fn read(ws: &Workspace, guard: &Guard, args: ReadArgs) -> Result<ReadOut, ToolError> {
    let rel = normalise(&args.path)?;
    let (fd, real) = open_read(ws, guard, &rel)?;
    let (bytes, size) = read_fd(fd, MAX_FILE_BYTES)?;
    if size > MAX_FILE_BYTES && args.start_line.is_none() {
        return Err(ToolError::Invalid(format!(
            "{rel} is {size} bytes; read it by line range (start_line, end_line) or search it with grep"
        )));
    }
    if bytes.contains(&0) {
        return Err(ToolError::Invalid(format!("{rel} is a binary file")));
    }
    ws.saw(&real, digest(&bytes));
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let total = lines.len() as u64;
    let start = args.start_line.unwrap_or(1).max(1);
    let end = args.end_line.unwrap_or(total).min(total);
    let max = args
        .max_bytes
        .unwrap_or(DEFAULT_READ_BYTES)
        .clamp(1, MAX_FILE_BYTES);
    let mut content = String::new();
    let mut last = start.saturating_sub(1);
    let mut truncated = false;
    for (i, line) in lines.iter().enumerate() {
        let n = i as u64 + 1;
        if n < start || n > end {
            continue;
        }
        if (content.len() + line.len()) as u64 > max {
            truncated = true;
            break;
        }
        content.push_str(line);
        last = n;
    }
    Ok(ReadOut {
        path: real,
        content,
        start_line: start,
        end_line: last,
        total_lines: total,
        size,
        truncated,
    })
}

/// `read_many`.
pub fn read_many(
    ws: &Workspace,
    guard: &Guard,
    args: ReadManyArgs,
) -> Result<ReadManyOut, ToolError> {
    if args.paths.len() > 100 {
        return Err(ToolError::Invalid("at most 100 paths at once".into()));
    }
    let files: Vec<ReadManyItem> = args
        .paths
        .iter()
        .map(|p| {
            let r = read(
                ws,
                guard,
                ReadArgs {
                    path: p.clone(),
                    start_line: None,
                    end_line: None,
                    max_bytes: Some(args.max_bytes.unwrap_or(64 << 10)),
                },
            );
            match r {
                Ok(v) => ReadManyItem::Read(v),
                Err(e) => ReadManyItem::Failed {
                    path: p.clone(),
                    error: e.to_string(),
                },
            }
        })
        .collect();
    Ok(ReadManyOut { files })
}
