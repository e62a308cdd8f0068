//! Tests that run the real `hearth` binary: the configuration example and layering, the
//! data directory and its secrets, secrets kept out of logs, the breach drill (provider keys
//! nowhere a thief looks), email through SMTP, TLS, what the server says at start, the official
//! `phoenix` npm client (Node.js), the terminal client `hearth chat` driven in tmux (its rooms
//! and its sign-up form too), and `hearth admin` (an SSH-key sign-in and the audit log). Every
//! server is started in a temp dir (on port 0, or a free port it is restarted on) and killed
//! when its test ends.

mod admin;
mod api;
mod backup;
mod breach;
mod canary;
mod chat;
mod chat_keeps;
mod chat_rooms;
mod config;
mod data_dir;
mod harness;
mod mail;
mod metrics;
mod phoenix_js;
mod precedence;
mod smtp;
mod socket;
mod startup;
mod tls;
