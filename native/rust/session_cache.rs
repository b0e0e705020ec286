//! The server session store (TLS 1.2 session ids and TLS 1.3 stateful
//! tickets), shared by every host config of one server, with the hooks the
//! session cache callbacks need (node:tls 'newSession' / 'resumeSession',
//! and stores shared between processes):
//!
//! - a bounded in-memory cache (rustls' `ServerSessionMemoryCache`, which
//!   evicts the oldest entries once `size` is reached), or none;
//! - optionally, every session stored is also queued for the application
//!   (`rn_session_cache_take_new`), bounded, so the C++ side can hand new
//!   sessions to JS after the handshake that made them;
//! - a preloaded answer: the application looked a session up
//!   asynchronously before the ClientHello was processed; rustls asks the
//!   store synchronously inside `rustls_accepted_into_connection`, so the
//!   caller preloads the answer on this thread right before that call and
//!   clears it right after (`rn_session_preload`, `rn_session_preload_clear`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::server::{ServerSessionMemoryCache, StoresServerSessions};

use crate::guard::value_boundary;

/// New sessions kept for the application at most; older ones are dropped
/// (the application only misses the chance to store them elsewhere).
const MAX_QUEUED: usize = 4096;

thread_local! {
    /// The answer an asynchronous lookup gave for the connection being
    /// accepted on this thread: (key, value, used).
    static PRELOAD: RefCell<Option<(Vec<u8>, Vec<u8>, bool)>> = const { RefCell::new(None) };
}

#[derive(Debug)]
pub(crate) struct HookedStore {
    local: Option<Arc<ServerSessionMemoryCache>>,
    report: AtomicBool,
    queued: Mutex<VecDeque<(Vec<u8>, Vec<u8>)>>,
}

impl HookedStore {
    fn preloaded(&self, key: &[u8]) -> Option<Vec<u8>> {
        PRELOAD.with(|p| {
            let mut p = p.borrow_mut();
            match p.as_mut() {
                Some((k, v, used)) if k.as_slice() == key => {
                    *used = true;
                    Some(v.clone())
                }
                _ => None,
            }
        })
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.local.as_ref().is_some_and(|l| l.get(key).is_some())
    }
}

impl StoresServerSessions for HookedStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if self.report.load(Ordering::Relaxed) {
            if let Ok(mut q) = self.queued.lock() {
                if q.len() >= MAX_QUEUED {
                    q.pop_front();
                }
                q.push_back((key.clone(), value.clone()));
            }
        }
        match &self.local {
            Some(l) => l.put(key, value),
            // Stored by the application only.
            None => true,
        }
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.preloaded(key).or_else(|| self.local.as_ref().and_then(|l| l.get(key)))
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.preloaded(key).or_else(|| self.local.as_ref().and_then(|l| l.take(key)))
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// Opaque handle on a store.
pub struct rn_session_cache {
    pub(crate) store: Arc<HookedStore>,
}

/// Create a store holding at most `size` sessions in memory. `size` 0: no
/// memory of its own, only what the application keeps (reported sessions,
/// preloaded answers); then `report` must be true.
///
/// Returns NULL for `size` 0 without `report`, or on internal failure. The
/// caller owns the result and frees it with `rn_session_cache_free`.
/// Configs that use the store keep their own reference, so freeing it early
/// is safe.
#[no_mangle]
pub extern "C" fn rn_session_cache_new(size: usize, report: bool) -> *mut rn_session_cache {
    value_boundary(std::ptr::null_mut(), || {
        if size == 0 && !report {
            return std::ptr::null_mut();
        }
        let store = Arc::new(HookedStore {
            local: if size == 0 { None } else { Some(ServerSessionMemoryCache::new(size)) },
            report: AtomicBool::new(report),
            queued: Mutex::new(VecDeque::new()),
        });
        Box::into_raw(Box::new(rn_session_cache { store }))
    })
}

/// Whether sessions stored from now on are queued for the application.
#[no_mangle]
pub extern "C" fn rn_session_cache_set_report(cache: *const rn_session_cache, report: bool) {
    value_boundary((), || {
        if let Some(c) = unsafe { cache.as_ref() } {
            c.store.report.store(report, Ordering::Relaxed);
            if !report {
                if let Ok(mut q) = c.store.queued.lock() {
                    q.clear();
                }
            }
        }
    })
}

/// Whether the store's own memory holds `key` (`key_len` bytes, borrowed
/// for the call). False for NULL arguments.
#[no_mangle]
pub extern "C" fn rn_session_cache_contains(cache: *const rn_session_cache, key: *const u8, key_len: usize) -> bool {
    value_boundary(false, || {
        let Some(c) = (unsafe { cache.as_ref() }) else { return false };
        if key.is_null() {
            return false;
        }
        c.store.contains(unsafe { std::slice::from_raw_parts(key, key_len) })
    })
}

/// Callback of `rn_session_cache_take_new`: one session, borrowed for the
/// call.
pub type rn_session_callback =
    Option<unsafe extern "C" fn(userdata: *mut std::ffi::c_void, key: *const u8, key_len: usize, value: *const u8, value_len: usize)>;

/// Hands every queued new session to `callback`, oldest first, and forgets
/// them. Returns how many.
#[no_mangle]
pub extern "C" fn rn_session_cache_take_new(
    cache: *const rn_session_cache,
    callback: rn_session_callback,
    userdata: *mut std::ffi::c_void,
) -> usize {
    value_boundary(0, || {
        let (Some(c), Some(cb)) = (unsafe { cache.as_ref() }, callback) else { return 0 };
        let taken: Vec<(Vec<u8>, Vec<u8>)> = match c.store.queued.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return 0,
        };
        for (k, v) in &taken {
            unsafe { cb(userdata, k.as_ptr(), k.len(), v.as_ptr(), v.len()) };
        }
        taken.len()
    })
}

/// Preloads, on this thread, the application's answer for `key`: the next
/// `get`/`take` of that key by any store returns `value`. Both are copied.
#[no_mangle]
pub extern "C" fn rn_session_preload(key: *const u8, key_len: usize, value: *const u8, value_len: usize) {
    value_boundary((), || {
        if key.is_null() || value.is_null() {
            return;
        }
        let k = unsafe { std::slice::from_raw_parts(key, key_len) }.to_vec();
        let v = unsafe { std::slice::from_raw_parts(value, value_len) }.to_vec();
        PRELOAD.with(|p| *p.borrow_mut() = Some((k, v, false)));
    })
}

/// Clears this thread's preloaded answer; true if rustls asked for it.
#[no_mangle]
pub extern "C" fn rn_session_preload_clear() -> bool {
    value_boundary(false, || PRELOAD.with(|p| p.borrow_mut().take().is_some_and(|(_, _, used)| used)))
}

/// A second handle on the same store (sessions, queue, settings), freed
/// with `rn_session_cache_free` independently of the first: whoever keeps
/// a store beyond a call (a listener, a connection waiting for a lookup)
/// holds its own handle. NULL for NULL.
#[no_mangle]
pub extern "C" fn rn_session_cache_clone(cache: *const rn_session_cache) -> *mut rn_session_cache {
    value_boundary(std::ptr::null_mut(), || match unsafe { cache.as_ref() } {
        Some(c) => Box::into_raw(Box::new(rn_session_cache { store: Arc::clone(&c.store) })),
        None => std::ptr::null_mut(),
    })
}

/// Free a store handle. NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn rn_session_cache_free(cache: *mut rn_session_cache) {
    value_boundary((), || {
        if !cache.is_null() {
            drop(unsafe { Box::from_raw(cache) });
        }
    })
}
