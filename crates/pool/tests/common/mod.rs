//! Shared helpers for the pool's integration tests.
#![allow(dead_code)]

use kmirror_pool::{ClientConfig, Properties};

/// A client config from `.properties` text, as a user would write it.
pub fn config(text: &str) -> ClientConfig {
    let props = Properties::parse(text).expect("valid properties");
    ClientConfig::from_properties(&props, &[])
        .expect("valid client config")
        .config
}
