//! Tests that run the real `hearth` binary: the configuration example and layering, the
//! data directory and its secrets, secrets kept out of logs, email through SMTP, and TLS.
//! Every server is started on port 0 in a temp dir and killed when its test ends.

mod api;
mod canary;
mod config;
mod data_dir;
mod harness;
mod mail;
mod precedence;
mod smtp;
mod tls;
