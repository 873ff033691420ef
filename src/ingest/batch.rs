//! What one `costsplit import` reads: the files given, every data file of an export folder,
//! or the parts an AWS export manifest lists, as one batch, so a billing period is never
//! imported from half its parts, and each part once (by path and by content). Only names
//! files; reading them is the formats' job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::file::{FileFormat, ImportError};

/// The billing files behind `inputs` (files, folders, manifests), each once, in a stable order.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut files = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| ImportError::Io {
            file: input.clone(),
            error: source,
        })?;
        if meta.is_dir() {
            files.extend(folder(input)?);
        } else if is_manifest(input) {
            files.extend(manifest(input)?);
        } else {
            files.push(input.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut contents: BTreeMap<(u64, [u8; 32]), &PathBuf> = BTreeMap::new();
    for file in &files {
        let canonical = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        if !seen.insert(canonical) {
            return Err(ImportError::Unreadable {
                file: file.clone(),
                message: "is given twice in one import; each part of an export counts once, so give it once".to_string(),
            });
        }
        let key = content_key(file).map_err(|source| ImportError::Io {
            file: file.clone(),
            error: source,
        })?;
        if let Some(first) = contents.insert(key, file) {
            return Err(ImportError::Unreadable {
                file: file.clone(),
                message: format!(
                    "holds the same data as {}; each part of an export counts once, so give it once",
                    first.display()
                ),
            });
        }
    }
    Ok(files)
}

/// What tells two files' contents apart: the size and a hash of the first and last MiB. Two
/// parts of a real export never share it; a copy of a file under another name always does.
fn content_key(file: &Path) -> std::io::Result<(u64, [u8; 32])> {
    use std::io::{Read, Seek, SeekFrom};
    const EDGE: u64 = 1 << 20;
    let mut f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buffer = Vec::new();
    (&mut f).take(EDGE).read_to_end(&mut buffer)?;
    hasher.update(&buffer);
    if size > EDGE {
        buffer.clear();
        f.seek(SeekFrom::Start(size.saturating_sub(EDGE).max(EDGE)))?;
        f.take(EDGE).read_to_end(&mut buffer)?;
        hasher.update(&buffer);
    }
    Ok((size, hasher.finalize().into()))
}

fn is_manifest(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|n| n.ends_with("manifest.json"))
}

/// A folder: the parts its manifests list when it has any (an AWS export folder keeps every
/// rewrite of a period side by side; the manifest names the current one), else every
/// billing file in it, sorted by path.
fn folder(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut manifests = Vec::new();
    let mut data = Vec::new();
    walk(dir, &mut |path| {
        if is_manifest(path) {
            manifests.push(path.to_path_buf());
        } else if FileFormat::detect(path).is_some() {
            data.push(path.to_path_buf());
        }
    })
    .map_err(|source| ImportError::Io {
        file: dir.to_path_buf(),
        error: source,
    })?;
    manifests.sort();
    data.sort();
    if manifests.is_empty() {
        if data.is_empty() {
            return Err(ImportError::Unreadable {
                file: dir.to_path_buf(),
                message: "holds no billing files (.csv, .csv.gz, .parquet) and no export manifest"
                    .to_string(),
            });
        }
        return Ok(data);
    }
    let mut files = Vec::new();
    for m in &manifests {
        files.extend(manifest(m)?);
    }
    Ok(files)
}

fn walk(dir: &Path, found: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if std::fs::metadata(&path)?.is_dir() {
            walk(&path, found)?;
        } else {
            found(&path);
        }
    }
    Ok(())
}

/// The parts an AWS export manifest lists: `dataFiles` (Data Exports: CUR 2.0, FOCUS) as
/// `s3://bucket/key` URIs, or `reportKeys` (legacy CUR) as keys. Each is looked for below the
/// manifest's folder and its parents, by the longest tail of its key that exists locally (the
/// layout `aws s3 sync` leaves), also without `.gz` (a part stored unpacked).
pub fn manifest(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let bad = |message: String| ImportError::Unreadable {
        file: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        error: source,
    })?;
    let keys = manifest_keys(&text).map_err(bad)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for key in &keys {
        files.push(locate(base, key).ok_or_else(|| {
            bad(format!(
                "lists {} part(s) and `{key}` is not found below {} or its parents; download the whole export folder (aws s3 sync) or use costsplit sync exports",
                keys.len(),
                base.display()
            ))
        })?);
    }
    Ok(files)
}

/// The S3 keys of the parts a manifest lists.
pub(super) fn manifest_keys(text: &str) -> Result<Vec<String>, String> {
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("is not an export manifest (not JSON: {e})"))?;
    let list = json
        .get("dataFiles")
        .or_else(|| json.get("reportKeys"))
        .and_then(|v| v.as_array())
        .ok_or("is not an AWS export manifest: it has neither `dataFiles` nor `reportKeys`")?;
    let keys: Vec<String> = list
        .iter()
        .map(|v| {
            let uri = v.as_str().ok_or("a part that is not a string")?;
            Ok(match uri.strip_prefix("s3://") {
                Some(rest) => rest.split_once('/').map_or("", |(_, key)| key).to_string(),
                None => uri.trim_start_matches('/').to_string(),
            })
        })
        .collect::<Result<_, &str>>()?;
    if keys.is_empty() {
        return Err("lists no parts: the export has no data for this period yet".to_string());
    }
    // Refused before anything is downloaded: a part listed twice would be read twice.
    let mut seen = std::collections::HashSet::new();
    let repeated: Vec<&String> = keys.iter().filter(|k| !seen.insert(*k)).collect();
    if let Some(first) = repeated.first() {
        return Err(format!(
            "lists the part `{first}` more than once ({} repeated entr{}); a part read twice would count its cost twice, so the manifest is refused: have the export written again",
            repeated.len(),
            if repeated.len() == 1 { "y" } else { "ies" }
        ));
    }
    Ok(keys)
}

fn locate(base: &Path, key: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = key.split('/').filter(|p| !p.is_empty()).collect();
    for dir in base.ancestors().take(6) {
        for start in 0..parts.len() {
            let candidate = dir.join(parts[start..].join("/"));
            if candidate.is_file() {
                return Some(candidate);
            }
            if let Some(unpacked) = candidate.to_str().and_then(|c| c.strip_suffix(".gz")) {
                if Path::new(unpacked).is_file() {
                    return Some(PathBuf::from(unpacked));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keys_come_from_data_exports_and_legacy_manifests() {
        let exports =
            r#"{"dataFiles":["s3://b/p/x/data/BILLING_PERIOD=2026-04/e/x-00001.csv.gz"]}"#;
        assert_eq!(
            manifest_keys(exports).expect("keys"),
            ["p/x/data/BILLING_PERIOD=2026-04/e/x-00001.csv.gz"]
        );
        let legacy = r#"{"bucket":"b","reportKeys":["r/20231101-20231201/abc/r-1.csv.gz"]}"#;
        assert_eq!(
            manifest_keys(legacy).expect("keys"),
            ["r/20231101-20231201/abc/r-1.csv.gz"]
        );
        assert!(manifest_keys(r#"{"columns":[]}"#).is_err());
        assert!(manifest_keys(r#"{"dataFiles":[]}"#).is_err());
    }

    #[test]
    fn a_manifest_listing_a_part_twice_is_refused_before_any_download() {
        let parts: Vec<String> = (0..2000)
            .map(|_| "\"s3://b/p/x-1.csv.gz\"".to_string())
            .collect();
        let text = format!(r#"{{"dataFiles":[{}]}}"#, parts.join(","));
        let err = manifest_keys(&text).expect_err("repeated");
        assert!(
            err.contains("lists the part `p/x-1.csv.gz` more than once (1999 repeated entries)"),
            "{err}"
        );
        assert_eq!(
            err.matches("p/x-1.csv.gz").count(),
            1,
            "the object is named once: {err}"
        );
    }
}
