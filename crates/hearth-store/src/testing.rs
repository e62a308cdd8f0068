//! Throwaway databases for tests (feature `test-support`).
//!
//! [`TestDatabase::sqlite`] makes a file in a temporary directory. [`TestDatabase::postgres`]
//! creates a fresh database on the server named by `HEARTH_TEST_POSTGRES_URL` and drops it
//! when the value is dropped (even after a failed assertion), or returns `None` when the
//! variable is unset so callers can report the test as skipped.

use sqlx::{Connection as _, PgConnection};

/// The environment variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "HEARTH_TEST_POSTGRES_URL";

/// A database that exists for as long as this value does.
#[derive(Debug)]
pub struct TestDatabase {
    /// URL to give the store or the server.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    _postgres: Option<PostgresCleanup>,
}

#[derive(Debug)]
struct PostgresCleanup {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// A fresh SQLite file.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("hearth.db").display());
        Self { url, _dir: Some(dir), _postgres: None }
    }

    /// A fresh PostgreSQL database, or `None` (after saying so on stderr) when
    /// `HEARTH_TEST_POSTGRES_URL` is not set.
    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            eprintln!("skipped {test} on PostgreSQL: {POSTGRES_URL_VAR} is not set");
            return None;
        };
        let name = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test PostgreSQL server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(Self { url, _dir: None, _postgres: Some(PostgresCleanup { admin_url, name }) })
    }
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

impl Drop for PostgresCleanup {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which must not block; a separate thread
        // with its own runtime can.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/test?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
