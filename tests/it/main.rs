//! The integration tests: one binary (one link of aws-sdk-s3), a module per
//! area. Each test starts real `jadfs` processes on 127.0.0.1 with free
//! ports and temporary folders, and drives them with real clients.

mod access_keys;
mod auth;
mod cluster;
mod common;
mod crash;
mod drain;
mod membership;
mod metrics;
mod s3;
mod security;
mod storage_node;
