//! Rust glue for rustls-node.
//!
//! Everything that rustls-ffi already offers is used through its C API from the
//! C++ addon. This crate adds only what rustls-ffi cannot do at config level:
//!
//! - [`session_cache`]: a server-side session store attached to the
//!   `rustls::ServerConfig` itself. rustls-ffi's callback store receives its
//!   userdata only inside `rustls_connection_process_new_packets`; on the
//!   acceptor path the ClientHello is processed inside
//!   `rustls_accepted_into_connection`, so a callback store never hits there.
//! - [`ticketer`]: a `ProducesTickets` with operator-supplied keys, so that
//!   several processes resume each other's sessions.
//! - [`server_config`]: attaching both (and a certificate resolver that tells
//!   which certificate was chosen) to a config built by rustls-ffi.
//!
//! Every exported function catches panics (see [`guard`]); no panic crosses
//! the C ABI.

#![allow(non_camel_case_types)]

// Link rustls-ffi into the staticlib: its `rustls_*` symbols are what the C++
// addon calls.
pub use rustls_ffi;
// Link nghttp2 (built from the crate's bundled C source) into the staticlib
// too: the native HTTP/2 front calls its `nghttp2_*` functions.
pub use libnghttp2_sys;

pub mod guard;
pub mod server_config;
pub mod session_cache;
pub mod ticketer;

#[cfg(test)]
mod tests;
