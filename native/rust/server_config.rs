//! Completing a `rustls_server_config` built by rustls-ffi with what its
//! builder cannot set: our session store, our ticketer, and a certificate
//! resolver that reports which certificate it chose.
//!
//! rustls-ffi hands out `rustls_server_config` as `Arc::into_raw` of an
//! `Arc<rustls::ServerConfig>` and `rustls_certified_key` as `Arc::into_raw`
//! of an `Arc<rustls::sign::CertifiedKey>` (see `arc_castable!` in its
//! `ffi.rs`). The glue relies on that, which is why rustls-ffi and rustls are
//! pinned exactly in Cargo.toml and the round trip is unit-tested.

use std::cell::Cell;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls_ffi::certificate::rustls_certified_key;
use rustls_ffi::rustls_result;
use rustls_ffi::server::rustls_server_config;

use crate::guard::{result_boundary, value_boundary};
use crate::session_cache::rn_session_cache;
use crate::ticketer::rn_ticketer;

thread_local! {
    /// Index of the certificate chosen by the last resolver call on this
    /// thread, or -1. A server connection resolves its certificate inside
    /// `rustls_accepted_into_connection` (or the first
    /// `rustls_connection_process_new_packets`), synchronously, on the
    /// calling thread; the caller resets this before and reads it after.
    static LAST_CHOSEN: Cell<isize> = const { Cell::new(-1) };
}

/// Picks the first certificate whose key can sign with one of the schemes the
/// client offered, as rustls-ffi's own resolver does (rustls has already
/// narrowed the schemes to those usable with the client's cipher suites), and
/// records its index.
#[derive(Debug)]
struct ChoiceRecordingResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ChoiceRecordingResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = client_hello.signature_schemes();
        let (index, key) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, k)| k.key.choose_scheme(schemes).is_some())?;
        LAST_CHOSEN.with(|c| c.set(index as isize));
        Some(Arc::clone(key))
    }
}

/// Clone the `Arc` behind a rustls-ffi `rustls_certified_key` pointer.
///
/// # Safety
/// `ptr` must be a live pointer returned by rustls-ffi.
unsafe fn certified_key_arc(ptr: *const rustls_certified_key) -> Arc<CertifiedKey> {
    let raw = ptr as *const CertifiedKey;
    Arc::increment_strong_count(raw);
    Arc::from_raw(raw)
}

/// Build a new server config from `config` with:
///
/// - a certificate resolver over `keys[0..keys_len]` (same choice rule as
///   `rustls_server_config_builder_set_certified_keys`) that records the
///   chosen index for `rn_last_chosen_certificate`;
/// - `cache` as session storage, if not NULL; if NULL, no session storage;
/// - `ticketer` for stateless tickets, if not NULL; if NULL, no tickets
///   beyond the stateful ones the cache provides;
/// - `send_tls13_tickets` NewSessionTicket messages after a full handshake.
///
/// Nothing is taken over: `config`, `keys`, `cache` and `ticketer` stay owned
/// by the caller; the new config holds its own references. On
/// `RUSTLS_RESULT_OK`, `config_out` receives a config owned by the caller, to
/// be freed with `rustls_server_config_free`. On error it is unchanged.
#[no_mangle]
pub extern "C" fn rn_server_config_finish(
    config: *const rustls_server_config,
    keys: *const *const rustls_certified_key,
    keys_len: usize,
    cache: *const rn_session_cache,
    ticketer: *const rn_ticketer,
    send_tls13_tickets: usize,
    config_out: *mut *const rustls_server_config,
) -> rustls_result {
    result_boundary(|| {
        if config.is_null() || config_out.is_null() || (keys.is_null() && keys_len > 0) {
            return rustls_result::NullParameter;
        }
        if keys_len == 0 {
            return rustls_result::NoCertResolver;
        }
        let base: &ServerConfig = unsafe { &*(config as *const ServerConfig) };
        let key_ptrs = unsafe { std::slice::from_raw_parts(keys, keys_len) };
        if key_ptrs.iter().any(|p| p.is_null()) {
            return rustls_result::NullParameter;
        }
        let mut next = base.clone();
        next.cert_resolver = Arc::new(ChoiceRecordingResolver {
            keys: key_ptrs
                .iter()
                .map(|&p| unsafe { certified_key_arc(p) })
                .collect(),
        });
        next.session_storage = match unsafe { cache.as_ref() } {
            Some(c) => Arc::clone(&c.store) as Arc<dyn rustls::server::StoresServerSessions>,
            None => Arc::new(rustls::server::NoServerSessionStorage {}),
        };
        if let Some(t) = unsafe { ticketer.as_ref() } {
            next.ticketer = t.ticketer.clone();
        }
        next.send_tls13_tickets = send_tls13_tickets;
        let out = Arc::into_raw(Arc::new(next)) as *const rustls_server_config;
        unsafe { *config_out = out };
        rustls_result::Ok
    })
}

/// Reset the record of the last chosen certificate on this thread.
#[no_mangle]
pub extern "C" fn rn_reset_chosen_certificate() {
    value_boundary((), || LAST_CHOSEN.with(|c| c.set(-1)))
}

/// Index (into the `keys` given to `rn_server_config_finish`) of the
/// certificate chosen by the last resolution on this thread, or -1.
#[no_mangle]
pub extern "C" fn rn_last_chosen_certificate() -> isize {
    value_boundary(-1, || LAST_CHOSEN.with(|c| c.get()))
}
