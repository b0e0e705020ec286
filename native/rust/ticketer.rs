//! TLS session tickets sealed with keys pushed in from outside.
//!
//! rustls-ffi has no ticketer, and rustls' own ticketers draw random keys per
//! process. Servers that must resume each other's sessions (a `cluster` of
//! workers, several hosts behind one name) need the same keys everywhere.
//!
//! Key material: one or more 80-byte keys (the size nginx and others use for
//! `ssl_session_ticket_key`, e.g. `openssl rand 80`). The first key seals new
//! tickets; every key opens tickets, so keys rotate by putting a fresh key
//! first and keeping the previous ones for a ticket lifetime.
//!
//! Rotation happens in place (`rn_ticketer_set_keys`): every config holding
//! this ticketer sees the new keys at its next ticket, so rotating never
//! rebuilds a config and never touches a live connection. Whoever pushes the
//! keys (one server's timer, or a cluster primary for all its workers)
//! decides the schedule.
//!
//! Ticket layout: `name(16) || nonce(12) || AES-256-GCM(state) || tag(16)`,
//! with the key name as associated data. The name is the key's first 16
//! bytes; the AEAD key is HKDF-SHA256 of the remaining 64 bytes, so a key file
//! never serves directly as a cipher key.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rustls::server::ProducesTickets;
use rustls_ffi::rustls_result;

use crate::guard::{result_boundary, value_boundary};

/// Size of one key in the key material.
pub const TICKET_KEY_LEN: usize = 80;
const NAME_LEN: usize = 16;
const TAG_LEN: usize = 16;
const HKDF_SALT: &[u8] = b"rustls-node ticket key v1";

struct TicketKey {
    name: [u8; NAME_LEN],
    aead: LessSafeKey,
}

/// Seals and opens tickets with an ordered set of keys that can be replaced
/// while configs use it.
pub struct SharedKeyTicketer {
    keys: RwLock<Vec<TicketKey>>,
    lifetime: AtomicU32,
    rng: SystemRandom,
}

impl fmt::Debug for SharedKeyTicketer {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyTicketer")
            .field("keys", &self.key_set().len())
            .field("lifetime", &self.lifetime.load(Ordering::Relaxed))
            .finish()
    }
}

/// Derive the keys of `material` (a whole number of 80-byte keys, at least
/// one), or None.
fn derive_keys(material: &[u8]) -> Option<Vec<TicketKey>> {
    if material.is_empty() || material.len() % TICKET_KEY_LEN != 0 {
        return None;
    }
    let salt = Salt::new(HKDF_SALT_ALG, HKDF_SALT);
    let mut keys = Vec::with_capacity(material.len() / TICKET_KEY_LEN);
    for chunk in material.chunks_exact(TICKET_KEY_LEN) {
        let mut name = [0u8; NAME_LEN];
        name.copy_from_slice(&chunk[..NAME_LEN]);
        let prk = salt.extract(&chunk[NAME_LEN..]);
        let okm = prk.expand(&[b"aead"], &AES_256_GCM).ok()?;
        let unbound = UnboundKey::from(okm);
        keys.push(TicketKey {
            name,
            aead: LessSafeKey::new(unbound),
        });
    }
    Some(keys)
}

impl SharedKeyTicketer {
    /// Build from `material` (a whole number of 80-byte keys, at least one)
    /// and a lifetime hint of `lifetime` seconds (≥ 1).
    pub fn new(material: &[u8], lifetime: u32) -> Option<Self> {
        if lifetime == 0 {
            return None;
        }
        Some(Self {
            keys: RwLock::new(derive_keys(material)?),
            lifetime: AtomicU32::new(lifetime),
            rng: SystemRandom::new(),
        })
    }

    /// Replace every key and the lifetime hint. Invalid input
    /// returns false and changes nothing. Tickets being sealed or opened
    /// meanwhile use either the old set or the new one, never a mix.
    pub fn set_keys(&self, material: &[u8], lifetime: u32) -> bool {
        if lifetime == 0 {
            return false;
        }
        let Some(keys) = derive_keys(material) else {
            return false;
        };
        // A poisoned lock only means a panic elsewhere while holding it;
        // the Vec inside is always whole, so it is replaced all the same.
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        self.lifetime.store(lifetime, Ordering::Relaxed);
        true
    }

    fn key_set(&self) -> RwLockReadGuard<'_, Vec<TicketKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }
}

const HKDF_SALT_ALG: aws_lc_rs::hkdf::Algorithm = HKDF_SHA256;

impl ProducesTickets for SharedKeyTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.lifetime.load(Ordering::Relaxed)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.key_set();
        let key = keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(NAME_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&key.name);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut sealed = out.split_off(NAME_LEN + NONCE_LEN);
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&key.name),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        // `cipher` is attacker-controlled: check lengths before slicing.
        if cipher.len() < NAME_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (name, rest) = cipher.split_at(NAME_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let keys = self.key_set();
        let key = keys.iter().find(|k| k.name == name)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain_len = key
            .aead
            .open_in_place(nonce, Aad::from(&key.name), &mut buf)
            .ok()?
            .len();
        buf.truncate(plain_len);
        Some(buf)
    }
}

/// Opaque handle: a boxed `Arc<SharedKeyTicketer>`.
pub struct rn_ticketer {
    pub(crate) ticketer: Arc<SharedKeyTicketer>,
}

/// Build a ticketer from `len` bytes of key material at `material`: a whole
/// number (≥ 1) of 80-byte keys, the first one sealing new tickets.
/// `lifetime_secs` is the lifetime hint sent to clients (≥ 1).
///
/// The material is copied and not retained. On `RUSTLS_RESULT_OK`, `out`
/// receives a handle owned by the caller (free with `rn_ticketer_free`);
/// configs that use it keep their own reference. Invalid sizes return
/// `RUSTLS_RESULT_INVALID_PARAMETER` and leave `out` unchanged.
#[no_mangle]
pub extern "C" fn rn_ticketer_new(
    material: *const u8,
    len: usize,
    lifetime_secs: u32,
    out: *mut *mut rn_ticketer,
) -> rustls_result {
    result_boundary(|| {
        if material.is_null() || out.is_null() {
            return rustls_result::NullParameter;
        }
        let material = unsafe { std::slice::from_raw_parts(material, len) };
        let Some(ticketer) = SharedKeyTicketer::new(material, lifetime_secs) else {
            return rustls_result::InvalidParameter;
        };
        let handle = Box::new(rn_ticketer {
            ticketer: Arc::new(ticketer),
        });
        unsafe { *out = Box::into_raw(handle) };
        rustls_result::Ok
    })
}

/// Replace the keys of `ticketer` with `len` bytes of key material at
/// `material` (same rules as `rn_ticketer_new`) and its lifetime hint with
/// `lifetime_secs`. Every config built with this ticketer seals new tickets
/// with the new first key from now on and opens only tickets of the new
/// keys; connections already established are not affected.
///
/// The material is copied and not retained. Invalid sizes return
/// `RUSTLS_RESULT_INVALID_PARAMETER` and leave the keys unchanged.
#[no_mangle]
pub extern "C" fn rn_ticketer_set_keys(
    ticketer: *const rn_ticketer,
    material: *const u8,
    len: usize,
    lifetime_secs: u32,
) -> rustls_result {
    result_boundary(|| {
        let Some(handle) = (unsafe { ticketer.as_ref() }) else {
            return rustls_result::NullParameter;
        };
        if material.is_null() {
            return rustls_result::NullParameter;
        }
        let material = unsafe { std::slice::from_raw_parts(material, len) };
        if handle.ticketer.set_keys(material, lifetime_secs) {
            rustls_result::Ok
        } else {
            rustls_result::InvalidParameter
        }
    })
}

/// Free a ticketer handle. NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn rn_ticketer_free(ticketer: *mut rn_ticketer) {
    value_boundary((), || {
        if !ticketer.is_null() {
            drop(unsafe { Box::from_raw(ticketer) });
        }
    })
}
