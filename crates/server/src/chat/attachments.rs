//! Attachment files under `DATA_DIR/attachments`.
//!
//! An upload streams into `attachments/tmp/<id>.part`, is flushed to disk and
//! renamed to `attachments/<id>` only when complete and within the size limit,
//! and gets its database row after that, so a crash never leaves a row without
//! its file. The file name the client gave is stored, cleaned, for display and
//! for the download's `Content-Disposition`; it never becomes part of a path.
//!
//! NOTE: an upload that no message ever refers to stays on disk; nothing
//! expires unsent uploads yet.

use std::path::{Path, PathBuf};

use axum::body::Body;
use futures_util::StreamExt as _;
use hearth_proto::ErrorCode;
use hearth_proto::chat::{Attachment, AttachmentId, ConversationId};
use sqlx::SqlitePool;
use tokio::io::AsyncWriteExt as _;

use super::error::ChatError;
use super::store::{now_ms, sql_to_u64};

/// Directory of attachment files inside the data directory.
pub const DIRECTORY: &str = "attachments";

/// Default upload limit: 25 MiB.
pub const DEFAULT_MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;

/// Maximum length of a stored file name in bytes.
const MAX_FILE_NAME_BYTES: usize = 255;

/// Maximum length of an accepted `Content-Type` in bytes.
const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// Content type of uploads that name none.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

pub struct AttachmentStore {
    dir: PathBuf,
    max_bytes: u64,
}

/// A stored attachment, for download.
pub struct StoredAttachment {
    pub conversation_id: ConversationId,
    pub attachment: Attachment,
    pub path: PathBuf,
}

impl AttachmentStore {
    /// Creates the directories and removes uploads that a previous run left
    /// unfinished.
    pub fn open(dir: &Path, max_bytes: u64) -> anyhow::Result<Self> {
        use anyhow::Context as _;

        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("failed to create attachment directory {}", tmp.display()))?;
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                if let Err(error) = std::fs::remove_file(entry.path()) {
                    tracing::warn!(path = %entry.path().display(), %error, "failed to remove an unfinished upload");
                }
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn too_large(&self, size: u64) -> ChatError {
        ChatError::new(
            ErrorCode::AttachmentTooLarge,
            format!(
                "the attachment is {size} bytes or more, larger than this server's limit of {} bytes",
                self.max_bytes
            ),
        )
    }

    /// Streams an upload to disk and records it. Fails with
    /// `attachment_too_large` as soon as the body passes the limit.
    pub async fn save(
        &self,
        pool: &SqlitePool,
        conversation_id: ConversationId,
        uploader: &str,
        upload: Upload,
        body: Body,
    ) -> Result<Attachment, ChatError> {
        if let Some(length) = upload.content_length
            && length > self.max_bytes
        {
            return Err(self.too_large(length));
        }
        let id = AttachmentId::new_v4();
        let part = self.dir.join("tmp").join(format!("{id}.part"));
        let result = self.write_part(&part, body).await;
        let size = match result {
            Ok(size) => size,
            Err(error) => {
                remove_quietly(&part).await;
                return Err(error);
            }
        };
        let file_name = id.to_string();
        if let Err(error) = tokio::fs::rename(&part, self.dir.join(&file_name)).await {
            remove_quietly(&part).await;
            return Err(ChatError::internal(
                "failed to move an upload in place",
                &error,
            ));
        }

        let inserted = sqlx::query(
            "INSERT INTO attachments
                 (id, conversation_id, uploader, name, content_type, size_bytes, path, created_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(conversation_id.to_string())
        .bind(uploader)
        .bind(&upload.name)
        .bind(&upload.content_type)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(&file_name)
        .bind(now_ms())
        .execute(pool)
        .await;
        if let Err(error) = inserted {
            remove_quietly(&self.dir.join(&file_name)).await;
            return Err(error.into());
        }
        tracing::info!(attachment_id = %id, %conversation_id, size, "stored attachment");
        Ok(Attachment {
            id,
            name: upload.name,
            content_type: upload.content_type,
            size_bytes: size,
        })
    }

    /// Writes the body to `part` and flushes it to disk. Returns its size.
    async fn write_part(&self, part: &Path, body: Body) -> Result<u64, ChatError> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(part)
            .await
            .map_err(|error| ChatError::internal("failed to create an upload file", &error))?;
        let mut size: u64 = 0;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|error| {
                ChatError::invalid(format!("failed to read the upload body: {error}"))
            })?;
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(self.too_large(size));
            }
            file.write_all(&chunk)
                .await
                .map_err(|error| ChatError::internal("failed to write an upload", &error))?;
        }
        file.sync_all()
            .await
            .map_err(|error| ChatError::internal("failed to flush an upload", &error))?;
        Ok(size)
    }

    /// Looks up an attachment for download.
    pub async fn find(
        &self,
        pool: &SqlitePool,
        id: AttachmentId,
    ) -> Result<StoredAttachment, ChatError> {
        let row: Option<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT conversation_id, name, content_type, size_bytes, path FROM attachments
             WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
        let Some((conversation_id, name, content_type, size_bytes, path)) = row else {
            return Err(ChatError::new(
                ErrorCode::AttachmentNotFound,
                format!("attachment {id} not found; it may belong to a deleted message"),
            ));
        };
        Ok(StoredAttachment {
            conversation_id: super::store::parse_uuid(&conversation_id)?,
            attachment: Attachment {
                id,
                name,
                content_type,
                size_bytes: sql_to_u64(size_bytes),
            },
            path: self.dir.join(path),
        })
    }
}

/// Metadata of an upload: the file name, content type and declared length.
pub struct Upload {
    pub name: String,
    pub content_type: String,
    pub content_length: Option<u64>,
}

impl Upload {
    /// Checks the `name` query parameter and the `Content-Type` header.
    pub fn new(
        name: Option<&str>,
        content_type: Option<&str>,
        content_length: Option<u64>,
    ) -> Result<Self, ChatError> {
        let Some(name) = name else {
            return Err(ChatError::invalid(
                "missing query parameter \"name\": give the file name, as in ?name=report.pdf",
            ));
        };
        Ok(Self {
            name: sanitize_file_name(name)?,
            content_type: validate_content_type(content_type)?,
            content_length,
        })
    }
}

/// Reduces a client's file name to its last path component without control
/// characters, trimmed and cut to `MAX_FILE_NAME_BYTES`.
pub fn sanitize_file_name(name: &str) -> Result<String, ChatError> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let mut cleaned = cleaned.trim().to_owned();
    if cleaned.len() > MAX_FILE_NAME_BYTES {
        let mut end = MAX_FILE_NAME_BYTES;
        while !cleaned.is_char_boundary(end) {
            end -= 1;
        }
        cleaned.truncate(end);
    }
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        return Err(ChatError::invalid(format!(
            "invalid file name {name:?}: give a name such as report.pdf"
        )));
    }
    Ok(cleaned)
}

fn validate_content_type(content_type: Option<&str>) -> Result<String, ChatError> {
    let Some(content_type) = content_type
        .map(str::trim)
        .filter(|value| !value.is_empty())
    else {
        return Ok(DEFAULT_CONTENT_TYPE.to_owned());
    };
    let valid = content_type.len() <= MAX_CONTENT_TYPE_BYTES
        && content_type.contains('/')
        && content_type
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid {
        return Err(ChatError::invalid(format!(
            "invalid Content-Type {content_type:?}: expected a media type such as image/png"
        )));
    }
    Ok(content_type.to_owned())
}

/// Builds a `Content-Disposition: attachment` value that carries the file name
/// as an ASCII fallback and in full as RFC 5987 UTF-8.
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte);
        if unreserved {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

async fn remove_quietly(path: &Path) {
    if let Err(error) = tokio::fs::remove_file(path).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "failed to remove a partial upload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_name_drops_directories() {
        assert_eq!(sanitize_file_name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            sanitize_file_name("C:\\Users\\a\\报告.pdf").unwrap(),
            "报告.pdf"
        );
    }

    #[test]
    fn file_name_drops_control_characters() {
        assert_eq!(sanitize_file_name("a\r\nb.txt").unwrap(), "ab.txt");
    }

    #[test]
    fn file_name_rejects_dot_dot() {
        assert!(sanitize_file_name("..").is_err());
        assert!(sanitize_file_name("dir/").is_err());
    }

    #[test]
    fn file_name_is_cut_at_char_boundary() {
        let name = "文".repeat(100);
        let cleaned = sanitize_file_name(&name).unwrap();
        assert!(cleaned.len() <= MAX_FILE_NAME_BYTES);
        assert!(cleaned.chars().all(|c| c == '文'));
    }

    #[test]
    fn disposition_encodes_utf8() {
        assert_eq!(
            content_disposition("报 \"a\".txt"),
            "attachment; filename=\"_ _a_.txt\"; filename*=UTF-8''%E6%8A%A5%20%22a%22.txt"
        );
    }

    #[test]
    fn content_type_defaults_to_octet_stream() {
        assert_eq!(validate_content_type(None).unwrap(), DEFAULT_CONTENT_TYPE);
    }

    #[test]
    fn content_type_rejects_line_breaks() {
        assert!(validate_content_type(Some("text/plain\r\nX-Evil: 1")).is_err());
    }
}
