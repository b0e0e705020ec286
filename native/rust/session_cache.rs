//! A bounded in-memory server session store (TLS 1.2 session ids and TLS 1.3
//! stateful tickets), shared by every host config of one server.
//!
//! rustls' `ServerSessionMemoryCache` evicts the oldest entries once `size`
//! is reached, so memory stays bounded whatever clients send.

use std::sync::Arc;

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use crate::guard::value_boundary;

/// Opaque handle: a boxed `Arc<dyn StoresServerSessions>`.
pub struct rn_session_cache {
    pub(crate) store: Arc<dyn StoresServerSessions>,
}

/// Create a cache holding at most `size` sessions (`size` ≥ 1).
///
/// Returns NULL if `size` is 0 or on internal failure. The caller owns the
/// result and frees it with `rn_session_cache_free`. Configs that use the
/// cache keep their own reference, so freeing it early is safe.
#[no_mangle]
pub extern "C" fn rn_session_cache_new(size: usize) -> *mut rn_session_cache {
    value_boundary(std::ptr::null_mut(), || {
        if size == 0 {
            return std::ptr::null_mut();
        }
        let store: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(size);
        Box::into_raw(Box::new(rn_session_cache { store }))
    })
}

/// Free a cache handle. NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn rn_session_cache_free(cache: *mut rn_session_cache) {
    value_boundary((), || {
        if !cache.is_null() {
            drop(unsafe { Box::from_raw(cache) });
        }
    })
}
