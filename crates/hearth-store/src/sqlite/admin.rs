//! Administrators on SQLite: [`AdminStore`](crate::AdminStore) as `admin.rs` writes it; appends
//! to the audit log are serialized by SQLite's exclusive write transactions.

use super::SqliteStore;
use crate::admin::admin_store_impl;

admin_store_impl!(SqliteStore, None::<&str>);
