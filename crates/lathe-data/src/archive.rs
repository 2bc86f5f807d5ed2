//! Zip archives holding several data files (e.g. train and validation): reading one
//! member, and extracting all of them, refusing members whose path climbs out.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::table::{extension, TABLE_EXTENSIONS};

fn error(path: &Path, message: String) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        row: None,
        message,
    }
}

fn open(path: &Path) -> Result<zip::ZipArchive<File>> {
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    zip::ZipArchive::new(file).map_err(|e| error(path, format!("not a readable zip archive: {e}")))
}

/// Whether a member is packing debris (macOS resource forks, Finder files).
fn is_debris(name: &str) -> bool {
    name.starts_with("__MACOSX/") || name.rsplit('/').next() == Some(".DS_Store")
}

/// The members' names (files only, debris left out), each checked to stay inside
/// the archive's folder.
fn member_names(path: &Path, archive: &zip::ZipArchive<File>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for name in archive.file_names() {
        if name.ends_with('/') || is_debris(name) {
            continue;
        }
        let safe = Path::new(name).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !safe {
            return Err(error(
                path,
                format!(
                    "member `{name}` climbs out of the archive's folder; the archive is refused"
                ),
            ));
        }
        names.push(name.to_string());
    }
    names.sort();
    Ok(names)
}

/// The data members of an archive (the files a table can be read from).
pub fn data_members(path: &Path) -> Result<Vec<String>> {
    let archive = open(path)?;
    Ok(member_names(path, &archive)?
        .into_iter()
        .filter(|n| TABLE_EXTENSIONS.contains(&extension(Path::new(n)).as_str()))
        .collect())
}

/// Reads one data member into memory: `member`, or the one whose name contains
/// `train`, or the only one.
pub(crate) fn read_member(path: &Path, member: Option<&str>) -> Result<(String, bytes::Bytes)> {
    let members = data_members(path)?;
    let chosen = match member {
        Some(m) => members.iter().find(|n| *n == m).cloned().ok_or_else(|| {
            error(
                path,
                format!("no data file `{m}`; it has: {}", members.join(", ")),
            )
        })?,
        None => {
            let train: Vec<&String> = members
                .iter()
                .filter(|n| n.to_ascii_lowercase().contains("train"))
                .collect();
            match (&members[..], &train[..]) {
                ([], _) => {
                    return Err(error(
                        path,
                        "holds no .csv, .parquet, .json or .jsonl file".into(),
                    ))
                }
                ([only], _) => only.clone(),
                (_, [only]) => (*only).clone(),
                _ => {
                    return Err(error(
                        path,
                        format!(
                            "holds several data files ({}); name the one to read",
                            members.join(", ")
                        ),
                    ))
                }
            }
        }
    };
    let mut archive = open(path)?;
    let mut file = archive
        .by_name(&chosen)
        .map_err(|e| error(path, format!("{chosen}: {e}")))?;
    let mut bytes = Vec::with_capacity(file.size() as usize);
    file.read_to_end(&mut bytes)
        .map_err(|e| error(path, format!("{chosen}: {e}")))?;
    Ok((chosen, bytes.into()))
}

/// Extracts every file of the archive (debris left out) into `dest`, which must not
/// exist yet. Everything is written to a sibling temporary folder first and renamed
/// at the end, so a failure leaves nothing behind. Returns the extracted paths.
pub fn extract(path: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    if dest.exists() {
        return Err(error(
            dest,
            "already exists; extraction needs a new folder".into(),
        ));
    }
    let mut archive = open(path)?;
    let names = member_names(path, &archive)?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataError::Io { path: p, source }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let staging = tempfile::Builder::new()
        .prefix(".extracting-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    for name in &names {
        let target = staging.path().join(name);
        if let Some(folder) = target.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        let mut member = archive
            .by_name(name)
            .map_err(|e| error(path, format!("{name}: {e}")))?;
        let mut out = File::create(&target).map_err(io(&target))?;
        std::io::copy(&mut member, &mut out).map_err(|e| error(path, format!("{name}: {e}")))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        DataError::Io {
            path: dest.to_path_buf(),
            source: e,
        }
    })?;
    Ok(names.iter().map(|n| dest.join(n)).collect())
}
