mod cases;
mod fallback;
mod props;
mod reload;
#[cfg(feature = "opa-wasm")]
mod wasm;

use std::path::Path;

/// Write `files` (name, text) into `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, text).unwrap();
    }
}
