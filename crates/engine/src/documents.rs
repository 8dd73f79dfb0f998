//! The document storage port: sealed bytes under a key. The file-system adapter keeps them in the
//! data directory; an object store would implement the same trait.

use std::path::PathBuf;

use async_trait::async_trait;

#[async_trait]
pub trait DocumentStorage: Send + Sync {
    async fn put(&self, key: &str, sealed: Vec<u8>) -> std::io::Result<()>;
    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>>;
}

pub struct FsDocuments {
    dir: PathBuf,
}

impl FsDocuments {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        // Keys are generated document ids; anything else must never name a path.
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "bad document key",
            ));
        }
        Ok(self.dir.join(key))
    }
}

#[async_trait]
impl DocumentStorage for FsDocuments {
    async fn put(&self, key: &str, sealed: Vec<u8>) -> std::io::Result<()> {
        let path = self.path(key)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            std::fs::create_dir_all(&dir)?;
            // Written whole and synced before the row that names it commits.
            let tmp = path.with_extension("partial");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn get(&self, key: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(key)?).await
    }
}
