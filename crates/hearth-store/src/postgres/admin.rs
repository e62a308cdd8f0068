//! Administrators on PostgreSQL: [`AdminStore`](crate::AdminStore) as `admin.rs` writes it; appends
//! to the audit log take a table lock that lets readers on.

use super::PostgresStore;
use crate::admin::admin_store_impl;

admin_store_impl!(PostgresStore, Some("LOCK TABLE admin_audit IN SHARE ROW EXCLUSIVE MODE"));
