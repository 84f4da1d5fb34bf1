//! Releases (issue 22): the builds `para push` uploads, numbered from 1, one of them current.
//!
//! - A build is stored once: pushing a build whose hash is stored makes that release current
//!   again instead of adding one ([`Store::push_release`] says which happened).
//! - Making a release current (a push, [`Store::set_current_release`]) notifies PostgreSQL's
//!   [`RELEASES_CHANNEL`] in the same transaction, so listeners hear of it only once it is
//!   committed; [`Store::current_release`] is the cheap read a poller makes instead.
//! - One database serves one project: callers compare a new build's project with
//!   [`Store::release_project`] before pushing.

use sqlx::Row;

use crate::{Backend, Result, Store, now_ms};

/// The PostgreSQL channel a change of the current release is notified on (payload: its number).
pub const RELEASES_CHANNEL: &str = "para_releases";

/// A stored release, without its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub number: i64,
    pub project_id: String,
    /// The build's content hash (`sha256:…`).
    pub hash: String,
    pub message: Option<String>,
    pub author: Option<String>,
    /// The git commit the project was at (`-dirty` when it had changes).
    pub commit: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A build to store.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub project_id: &'a str,
    pub hash: &'a str,
    /// The build document's text.
    pub build: &'a str,
    pub message: Option<&'a str>,
    pub author: Option<&'a str>,
    pub commit: Option<&'a str>,
}

const COLUMNS: &str = "number, project_id, hash, message, author, git_commit, created_at";

fn read(r: &sqlx::any::AnyRow) -> Release {
    Release {
        number: r.get(0),
        project_id: r.get(1),
        hash: r.get(2),
        message: r.get(3),
        author: r.get(4),
        commit: r.get(5),
        created_at: r.get(6),
    }
}

impl Store {
    /// Stores a build as a new release and makes it current, or, when a release with the same
    /// hash is stored, makes that one current. Returns the release and whether it is new.
    pub async fn push_release(&self, new: &NewRelease<'_>) -> Result<(Release, bool)> {
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Two pushes at once would both take the next number: one waits for the other.
            sqlx::query("SELECT pg_advisory_xact_lock(7261626172617069)").execute(&mut *tx).await?;
        }
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM releases WHERE hash = $1"
        )))
        .bind(new.hash)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| read(&r));
        let (release, created) = match existing {
            Some(release) => (release, false),
            None => {
                let number: i64 = sqlx::query("SELECT COALESCE(MAX(number), 0) + 1 FROM releases")
                    .fetch_one(&mut *tx)
                    .await?
                    .get(0);
                let release = Release {
                    number,
                    project_id: new.project_id.to_string(),
                    hash: new.hash.to_string(),
                    message: new.message.map(str::to_string),
                    author: new.author.map(str::to_string),
                    commit: new.commit.map(str::to_string),
                    created_at: now_ms(),
                };
                sqlx::query(
                    "INSERT INTO releases (number, project_id, hash, build, message, author, git_commit, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(release.number)
                .bind(&release.project_id)
                .bind(&release.hash)
                .bind(new.build)
                .bind(&release.message)
                .bind(&release.author)
                .bind(&release.commit)
                .bind(release.created_at)
                .execute(&mut *tx)
                .await?;
                (release, true)
            }
        };
        self.make_current(&mut tx, release.number).await?;
        tx.commit().await?;
        Ok((release, created))
    }

    /// Makes a stored release current (a rollback, or forward again). `None`: no such release.
    pub async fn set_current_release(&self, number: i64) -> Result<Option<Release>> {
        let mut tx = self.pool.begin().await?;
        let release = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM releases WHERE number = $1"
        )))
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| read(&r));
        if release.is_some() {
            self.make_current(&mut tx, number).await?;
        }
        tx.commit().await?;
        Ok(release)
    }

    async fn make_current(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        number: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO release_current (id, number, changed_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET number = excluded.number, changed_at = excluded.changed_at",
        )
        .bind(number)
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(RELEASES_CHANNEL)
                .bind(number.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// The current release's number, if any was pushed (one indexed row: cheap to poll).
    pub async fn current_release(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT number FROM release_current WHERE id = 1")
            .fetch_optional(&self.reader)
            .await?
            .map(|r| r.get(0)))
    }

    /// Every release, newest first, and the current one's number.
    pub async fn releases(&self) -> Result<(Vec<Release>, Option<i64>)> {
        let releases = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM releases ORDER BY number DESC"
        )))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(read)
        .collect();
        Ok((releases, self.current_release().await?))
    }

    /// The project the stored releases are of (none pushed: `None`).
    pub async fn release_project(&self) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT project_id FROM releases ORDER BY number DESC LIMIT 1")
            .fetch_optional(&self.reader)
            .await?
            .map(|r| r.get(0)))
    }

    /// A release and its build's text, by number.
    pub async fn release_build(&self, number: i64) -> Result<Option<(Release, String)>> {
        let query = format!("SELECT {COLUMNS}, build FROM releases WHERE number = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(number)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| (read(&r), r.get(7))))
    }

    /// A release and its build's text, by its build's hash (the hash a run records).
    pub async fn release_build_by_hash(&self, hash: &str) -> Result<Option<(Release, String)>> {
        let query = format!("SELECT {COLUMNS}, build FROM releases WHERE hash = $1");
        let row =
            sqlx::query(sqlx::AssertSqlSafe(query)).bind(hash).fetch_optional(&self.reader).await?;
        Ok(row.map(|r| (read(&r), r.get(7))))
    }
}

/// Notifications of changes of the current release (PostgreSQL only).
pub struct ReleaseListener(sqlx::postgres::PgListener);

impl ReleaseListener {
    /// Listens on [`RELEASES_CHANNEL`] over a connection of its own.
    pub async fn connect(url: &str) -> Result<ReleaseListener> {
        let mut listener = sqlx::postgres::PgListener::connect(url).await?;
        listener.listen(RELEASES_CHANNEL).await?;
        Ok(ReleaseListener(listener))
    }

    /// The next change: the number made current. An error: the connection is lost (the
    /// listener reconnects on the next call, and what changed meanwhile was not heard).
    pub async fn recv(&mut self) -> Result<i64> {
        let note = self.0.recv().await?;
        Ok(note.payload().parse().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(hash: &'a str, build: &'a str) -> NewRelease<'a> {
        NewRelease {
            project_id: "p",
            hash,
            build,
            message: Some("first"),
            author: Some("ada"),
            commit: Some("abc123-dirty"),
        }
    }

    #[tokio::test]
    async fn releases_are_numbered_stored_once_and_made_current() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(store.current_release().await.unwrap(), None);
        assert_eq!(store.release_project().await.unwrap(), None);

        let (one, created) = store.push_release(&new("sha256:1", "{\"a\":1}")).await.unwrap();
        assert!(created);
        assert_eq!((one.number, one.commit.as_deref()), (1, Some("abc123-dirty")));
        let (two, created) = store.push_release(&new("sha256:2", "{\"a\":2}")).await.unwrap();
        assert!(created);
        assert_eq!(two.number, 2);
        assert_eq!(store.current_release().await.unwrap(), Some(2));

        // The same build again: no new release, the stored one is current again.
        let (again, created) = store.push_release(&new("sha256:1", "{\"a\":1}")).await.unwrap();
        assert!(!created);
        assert_eq!(again, one);
        assert_eq!(store.current_release().await.unwrap(), Some(1));

        let rolled = store.set_current_release(2).await.unwrap().expect("release 2");
        assert_eq!(rolled, two);
        assert_eq!(store.current_release().await.unwrap(), Some(2));
        assert_eq!(store.set_current_release(9).await.unwrap(), None);
        assert_eq!(
            store.current_release().await.unwrap(),
            Some(2),
            "an unknown number changes nothing"
        );

        let (all, current) = store.releases().await.unwrap();
        assert_eq!(all.iter().map(|r| r.number).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(current, Some(2));
        let (release, text) = store.release_build_by_hash("sha256:1").await.unwrap().unwrap();
        assert_eq!((release.number, text.as_str()), (1, "{\"a\":1}"));
        let (release, text) = store.release_build(2).await.unwrap().unwrap();
        assert_eq!((release.hash.as_str(), text.as_str()), ("sha256:2", "{\"a\":2}"));
        assert!(store.release_build(3).await.unwrap().is_none());
        assert_eq!(store.release_project().await.unwrap().as_deref(), Some("p"));
    }
}
