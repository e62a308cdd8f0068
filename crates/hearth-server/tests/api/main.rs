//! HTTP integration tests: each test starts the real server in-process on `127.0.0.1:0`
//! with a temporary data directory and talks to it over HTTP.
//!
//! `TEST_LOG=1` shows the server's tracing output; `HEARTH_TEST_POSTGRES_URL` enables the
//! PostgreSQL tests in `postgres.rs`.

mod harness;

mod access_tokens;
mod account;
mod admin;
mod admin_rooms;
mod admin_users;
mod assistant;
mod assistant_truth;
mod asyncapi;
mod channels;
mod devices;
mod email_change;
mod encryption_keys;
mod hygiene;
mod identity;
mod invites;
mod keyguard;
mod login;
mod one_time_tokens;
mod password;
mod postgres;
mod presence;
mod profile;
mod refresh;
mod register;
mod room_channel;
mod rooms;
mod signout;
mod socket_client;
mod sockets;
mod users;
mod vault;
mod web;
