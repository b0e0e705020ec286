//! Round trips between the glue and rustls-ffi, driven through rustls-ffi's
//! own C functions on the server side (the path the addon uses) and a plain
//! rustls client on the other side.

use std::ffi::c_void;
use std::io::Read;
use std::ptr::{null, null_mut};
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ProducesTickets, ServerConfig};
use rustls::{ClientConnection, HandshakeKind, RootCertStore};
use rustls_ffi::acceptor::{rustls_accepted, rustls_accepted_alert, rustls_acceptor};
use rustls_ffi::certificate::rustls_certified_key;
use rustls_ffi::connection::rustls_connection;
use rustls_ffi::enums::rustls_handshake_kind;
use rustls_ffi::rslice::rustls_slice_bytes;
use rustls_ffi::server::{rustls_server_config, rustls_server_config_builder};
use rustls_ffi::{rustls_io_result, rustls_result};

use crate::server_config::{
    rn_last_chosen_certificate, rn_reset_chosen_certificate, rn_server_config_finish,
};
use crate::session_cache::{
    rn_session_cache, rn_session_cache_contains, rn_session_cache_free, rn_session_cache_new, rn_session_cache_take_new,
    rn_session_preload, rn_session_preload_clear,
};
use crate::ticketer::{
    rn_ticketer, rn_ticketer_free, rn_ticketer_new, rn_ticketer_set_keys, SharedKeyTicketer,
};

const CA: &[u8] = include_bytes!("testdata/ca.pem");
const ECDSA_CERT: &[u8] = include_bytes!("testdata/ecdsa.pem");
const ECDSA_KEY: &[u8] = include_bytes!("testdata/ecdsa.key");
const RSA_CERT: &[u8] = include_bytes!("testdata/rsa.pem");
const RSA_KEY: &[u8] = include_bytes!("testdata/rsa.key");

fn certified_key(cert: &[u8], key: &[u8]) -> *const rustls_certified_key {
    let mut out = null();
    let r = rustls_certified_key::rustls_certified_key_build(
        cert.as_ptr(),
        cert.len(),
        key.as_ptr(),
        key.len(),
        &mut out,
    );
    assert_eq!(r, rustls_result::Ok);
    out
}

struct Server {
    config: *const rustls_server_config,
}

impl Drop for Server {
    fn drop(&mut self) {
        rustls_server_config::rustls_server_config_free(self.config);
    }
}

/// Build a config with rustls-ffi, then finish it with the glue.
fn server(
    keys: &[*const rustls_certified_key],
    cache: *const rn_session_cache,
    ticketer: *const rn_ticketer,
) -> Server {
    let builder = rustls_server_config_builder::rustls_server_config_builder_new();
    let alpn = [rustls_slice_bytes::from(&b"h2"[..])];
    assert_eq!(
        rustls_server_config_builder::rustls_server_config_builder_set_alpn_protocols(
            builder,
            alpn.as_ptr(),
            alpn.len()
        ),
        rustls_result::Ok
    );
    assert_eq!(
        rustls_server_config_builder::rustls_server_config_builder_set_certified_keys(
            builder,
            keys.as_ptr(),
            keys.len()
        ),
        rustls_result::Ok
    );
    let mut built = null();
    assert_eq!(
        rustls_server_config_builder::rustls_server_config_builder_build(builder, &mut built),
        rustls_result::Ok
    );
    let mut finished = null();
    assert_eq!(
        rn_server_config_finish(
            built,
            keys.as_ptr(),
            keys.len(),
            cache,
            ticketer,
            2,
            &mut finished
        ),
        rustls_result::Ok
    );
    // The glue took its own references: the original may go now.
    rustls_server_config::rustls_server_config_free(built);
    Server { config: finished }
}

fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_protocol_versions(versions)
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

unsafe extern "C" fn read_cb(
    userdata: *mut c_void,
    buf: *mut u8,
    n: usize,
    out_n: *mut usize,
) -> rustls_io_result {
    let src = &mut *(userdata as *mut std::io::Cursor<Vec<u8>>);
    let dst = std::slice::from_raw_parts_mut(buf, n);
    *out_n = src.read(dst).unwrap();
    rustls_io_result(0)
}

unsafe extern "C" fn write_cb(
    userdata: *mut c_void,
    buf: *const u8,
    n: usize,
    out_n: *mut usize,
) -> rustls_io_result {
    let dst = &mut *(userdata as *mut Vec<u8>);
    dst.extend_from_slice(std::slice::from_raw_parts(buf, n));
    *out_n = n;
    rustls_io_result(0)
}

fn client_flight(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).unwrap();
    }
    out
}

struct Outcome {
    server_kind: u32,
    client_kind: HandshakeKind,
    chosen: isize,
    alpn: Option<Vec<u8>>,
}

/// One connection: acceptor → `rustls_accepted_into_connection` with the
/// finished config → handshake to completion, tickets delivered.
fn connect(server: &Server, client_config: &Arc<ClientConfig>) -> Outcome {
    let mut client = ClientConnection::new(
        Arc::clone(client_config),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();

    let acceptor = rustls_acceptor::rustls_acceptor_new();
    let mut input = std::io::Cursor::new(client_flight(&mut client));
    let mut accepted: *mut rustls_accepted = null_mut();
    let mut alert: *mut rustls_accepted_alert = null_mut();
    loop {
        let mut n = 0;
        let io = rustls_acceptor::rustls_acceptor_read_tls(
            acceptor,
            Some(read_cb),
            &mut input as *mut _ as *mut c_void,
            &mut n,
        );
        assert_eq!(io.0, 0);
        let r = rustls_acceptor::rustls_acceptor_accept(acceptor, &mut accepted, &mut alert);
        if r == rustls_result::Ok {
            break;
        }
        assert_eq!(r, rustls_result::AcceptorNotReady);
        assert!(n > 0, "ClientHello incomplete");
    }
    rn_reset_chosen_certificate();
    let mut conn: *mut rustls_connection = null_mut();
    let r = rustls_accepted::rustls_accepted_into_connection(
        accepted,
        server.config,
        &mut conn,
        &mut alert,
    );
    assert_eq!(r, rustls_result::Ok);
    let chosen = rn_last_chosen_certificate();
    rustls_accepted::rustls_accepted_free(accepted);
    rustls_acceptor::rustls_acceptor_free(acceptor);

    for _ in 0..16 {
        let mut to_client = Vec::new();
        while rustls_connection::rustls_connection_wants_write(conn) {
            let mut n = 0;
            let io = rustls_connection::rustls_connection_write_tls(
                conn,
                Some(write_cb),
                &mut to_client as *mut _ as *mut c_void,
                &mut n,
            );
            assert_eq!(io.0, 0);
        }
        let mut rd = &to_client[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut input = std::io::Cursor::new(client_flight(&mut client));
        while (input.position() as usize) < input.get_ref().len() {
            let mut n = 0;
            let io = rustls_connection::rustls_connection_read_tls(
                conn,
                Some(read_cb),
                &mut input as *mut _ as *mut c_void,
                &mut n,
            );
            assert_eq!(io.0, 0);
            assert_eq!(
                rustls_connection::rustls_connection_process_new_packets(conn),
                rustls_result::Ok
            );
        }
        if !client.is_handshaking()
            && !rustls_connection::rustls_connection_is_handshaking(conn)
            && !rustls_connection::rustls_connection_wants_write(conn)
            && !client.wants_write()
        {
            break;
        }
    }
    assert!(!client.is_handshaking());
    let server_kind = rustls_connection::rustls_connection_handshake_kind(conn) as u32;
    rustls_connection::rustls_connection_free(conn);
    Outcome {
        server_kind,
        client_kind: client.handshake_kind().unwrap(),
        chosen,
        alpn: client.alpn_protocol().map(|p| p.to_vec()),
    }
}

fn with_alpn(cfg: Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut c = (*cfg).clone();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

#[test]
fn finished_config_keeps_builder_settings_and_adds_ours() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let cache = rn_session_cache_new(16, false);
    let srv = server(&[key], cache, null());
    rustls_certified_key::rustls_certified_key_free(key);
    rn_session_cache_free(cache);
    let cfg: &ServerConfig = unsafe { &*(srv.config as *const ServerConfig) };
    assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);
    assert!(cfg.session_storage.can_cache());
    assert!(!cfg.ticketer.enabled());
    assert_eq!(cfg.send_tls13_tickets, 2);
    // The key and cache handles were freed above: the config must still work.
    let out = connect(&srv, &with_alpn(client_config(&[&rustls::version::TLS13])));
    assert_eq!(out.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(out.server_kind, rustls_handshake_kind::Full as u32);
}

#[test]
fn session_cache_resumes_tls13_and_tls12_on_acceptor_path() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let cache = rn_session_cache_new(64, false);
    let srv = server(&[key], cache, null());
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let cc = client_config(versions);
        let first = connect(&srv, &cc);
        assert_eq!(first.server_kind, rustls_handshake_kind::Full as u32);
        let second = connect(&srv, &cc);
        assert_eq!(second.server_kind, rustls_handshake_kind::Resumed as u32);
        assert_eq!(second.client_kind, HandshakeKind::Resumed);
    }
    rn_session_cache_free(cache);
    rustls_certified_key::rustls_certified_key_free(key);
}

unsafe extern "C" fn collect_session(userdata: *mut c_void, key: *const u8, key_len: usize, value: *const u8, value_len: usize) {
    let out = &mut *(userdata as *mut Vec<(Vec<u8>, Vec<u8>)>);
    out.push((std::slice::from_raw_parts(key, key_len).to_vec(), std::slice::from_raw_parts(value, value_len).to_vec()));
}

#[test]
fn a_reported_session_preloaded_on_another_server_resumes_there() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let a_cache = rn_session_cache_new(64, true);
    let b_cache = rn_session_cache_new(0, true);
    let a = server(&[key], a_cache, null());
    let b = server(&[key], b_cache, null());
    let cc = client_config(&[&rustls::version::TLS12]);
    assert_eq!(connect(&a, &cc).server_kind, rustls_handshake_kind::Full as u32);
    let mut made: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let n = rn_session_cache_take_new(a_cache, Some(collect_session), &mut made as *mut _ as *mut c_void);
    assert_eq!(n, 1);
    assert_eq!(made.len(), 1);
    let (id, value) = made[0].clone();
    assert!(rn_session_cache_contains(a_cache, id.as_ptr(), id.len()));
    assert!(!rn_session_cache_contains(b_cache, id.as_ptr(), id.len()));
    // Taken once: nothing is reported twice.
    assert_eq!(rn_session_cache_take_new(a_cache, Some(collect_session), &mut made as *mut _ as *mut c_void), 0);
    // B has no memory of its own: the application's answer, preloaded.
    rn_session_preload(id.as_ptr(), id.len(), value.as_ptr(), value.len());
    let resumed = connect(&b, &cc);
    assert!(rn_session_preload_clear(), "rustls asked for the preloaded session");
    assert_eq!(resumed.server_kind, rustls_handshake_kind::Resumed as u32);
    // A garbage answer is refused by rustls: a full handshake, no failure.
    let cc2 = client_config(&[&rustls::version::TLS12]);
    connect(&a, &cc2);
    made.clear();
    rn_session_cache_take_new(a_cache, Some(collect_session), &mut made as *mut _ as *mut c_void);
    let (id2, _) = made[0].clone();
    let garbage = vec![0xffu8; 40];
    rn_session_preload(id2.as_ptr(), id2.len(), garbage.as_ptr(), garbage.len());
    let full = connect(&b, &cc2);
    assert!(rn_session_preload_clear());
    assert_eq!(full.server_kind, rustls_handshake_kind::Full as u32);
    for c in [a_cache, b_cache] {
        rn_session_cache_free(c);
    }
    rustls_certified_key::rustls_certified_key_free(key);
}

#[test]
fn no_cache_and_no_ticketer_means_no_resumption() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let srv = server(&[key], null(), null());
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let cc = client_config(versions);
        connect(&srv, &cc);
        let second = connect(&srv, &cc);
        assert_eq!(second.server_kind, rustls_handshake_kind::Full as u32);
    }
    rustls_certified_key::rustls_certified_key_free(key);
}

fn ticketer(material: &[u8]) -> *mut rn_ticketer {
    let mut t = null_mut();
    assert_eq!(
        rn_ticketer_new(material.as_ptr(), material.len(), 3600, &mut t),
        rustls_result::Ok
    );
    t
}

#[test]
fn shared_ticket_keys_resume_across_independent_servers() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let material = [7u8; 160];
    // Two servers as two processes would build them: separate configs,
    // separate ticketer instances, no session cache, same key material.
    let (t1, t2) = (ticketer(&material), ticketer(&material));
    let a = server(&[key], null(), t1);
    let b = server(&[key], null(), t2);
    let other = ticketer(&[9u8; 80]);
    let c = server(&[key], null(), other);
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let cc = client_config(versions);
        assert_eq!(connect(&a, &cc).server_kind, rustls_handshake_kind::Full as u32);
        assert_eq!(connect(&b, &cc).server_kind, rustls_handshake_kind::Resumed as u32);
        // A server with other keys cannot open the ticket: full handshake.
        assert_eq!(connect(&c, &cc).server_kind, rustls_handshake_kind::Full as u32);
    }
    for t in [t1, t2, other] {
        rn_ticketer_free(t);
    }
    rustls_certified_key::rustls_certified_key_free(key);
}

#[test]
fn resolver_records_which_certificate_was_chosen() {
    let ecdsa = certified_key(ECDSA_CERT, ECDSA_KEY);
    let rsa = certified_key(RSA_CERT, RSA_KEY);
    let srv = server(&[ecdsa, rsa], null(), null());
    let full = connect(&srv, &client_config(&[&rustls::version::TLS13]));
    assert_eq!(full.chosen, 0);

    // A TLS 1.2 client offering only ECDHE-RSA suites must get the RSA leaf.
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.retain(|s| {
        matches!(
            s.suite(),
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        )
    });
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(CA) {
        roots.add(cert.unwrap()).unwrap();
    }
    let rsa_only = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert_eq!(connect(&srv, &rsa_only).chosen, 1);
    rustls_certified_key::rustls_certified_key_free(ecdsa);
    rustls_certified_key::rustls_certified_key_free(rsa);
}

#[test]
fn ticketer_rejects_bad_material_and_bad_tickets() {
    assert!(SharedKeyTicketer::new(&[], 60).is_none());
    assert!(SharedKeyTicketer::new(&[1u8; 79], 60).is_none());
    assert!(SharedKeyTicketer::new(&[1u8; 81], 60).is_none());
    assert!(SharedKeyTicketer::new(&[1u8; 80], 0).is_none());
    let mut out = null_mut();
    assert_eq!(
        rn_ticketer_new([1u8; 10].as_ptr(), 10, 60, &mut out),
        rustls_result::InvalidParameter
    );
    assert!(out.is_null());

    let mut rotated = vec![2u8; 80];
    rotated.extend_from_slice(&[1u8; 80]);
    let old = SharedKeyTicketer::new(&[1u8; 80], 60).unwrap();
    let new = SharedKeyTicketer::new(&rotated, 60).unwrap();
    let ticket = old.encrypt(b"session state").unwrap();
    // Rotation: the old key, now second, still opens old tickets.
    assert_eq!(new.decrypt(&ticket).unwrap(), b"session state");
    // New tickets are sealed with the first key, which the old set lacks.
    let fresh = new.encrypt(b"x").unwrap();
    assert!(old.decrypt(&fresh).is_none());
    // Tampering and truncation fail closed.
    let mut bad = ticket.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(old.decrypt(&bad).is_none());
    for len in 0..44 {
        assert!(old.decrypt(&ticket[..len.min(ticket.len())]).is_none());
    }
    // Two tickets for the same state differ (fresh nonce each time).
    assert_ne!(old.encrypt(b"s").unwrap(), old.encrypt(b"s").unwrap());
}

fn key_material(keys: &[u8]) -> Vec<u8> {
    keys.iter().flat_map(|&k| [k; 80]).collect()
}

#[test]
fn ticketer_keys_rotate_in_place_old_key_kept_then_dropped() {
    let t = SharedKeyTicketer::new(&key_material(&[1]), 60).unwrap();
    let old = t.encrypt(b"state").unwrap();
    assert_eq!(t.lifetime(), 60);
    // Rotation: a new sealing key first, the old one kept for opening.
    assert!(t.set_keys(&key_material(&[2, 1]), 30));
    assert_eq!(t.lifetime(), 30);
    assert_eq!(t.decrypt(&old).unwrap(), b"state");
    let fresh = t.encrypt(b"new").unwrap();
    // Sealed under the new first key's name.
    assert_eq!(&fresh[..16], &[2u8; 16]);
    // Next rotation drops key 1: its tickets no longer open.
    assert!(t.set_keys(&key_material(&[3, 2]), 30));
    assert!(t.decrypt(&old).is_none());
    assert_eq!(t.decrypt(&fresh).unwrap(), b"new");
    // Bad material or lifetime changes nothing.
    assert!(!t.set_keys(&[1u8; 79], 30));
    assert!(!t.set_keys(&[], 30));
    assert!(!t.set_keys(&key_material(&[4]), 0));
    assert_eq!(t.lifetime(), 30);
    assert_eq!(t.decrypt(&fresh).unwrap(), b"new");
}

#[test]
fn set_keys_through_the_handle_reaches_configs_built_before() {
    let key = certified_key(ECDSA_CERT, ECDSA_KEY);
    let t = ticketer(&key_material(&[1]));
    // Built once; every rotation below happens in the ticketer only.
    let srv = server(&[key], null(), t);
    let set = |keys: &[u8]| {
        let m = key_material(keys);
        rn_ticketer_set_keys(t, m.as_ptr(), m.len(), 3600)
    };
    const FULL: u32 = rustls_handshake_kind::Full as u32;
    const RESUMED: u32 = rustls_handshake_kind::Resumed as u32;
    let kind = |cc: &Arc<ClientConfig>| connect(&srv, cc).server_kind;
    let before = client_config(&[&rustls::version::TLS13]);
    let during = client_config(&[&rustls::version::TLS13]);
    // Both clients hold tickets sealed with key 1.
    assert_eq!(kind(&before), FULL);
    assert_eq!(kind(&during), FULL);
    assert_eq!(set(&[2, 1]), rustls_result::Ok);
    // Key 1 is still accepted.
    assert_eq!(kind(&during), RESUMED);
    assert_eq!(set(&[3, 2]), rustls_result::Ok);
    // `before` still offers a key-1 ticket (its newest): no longer accepted.
    assert_eq!(kind(&before), FULL);
    // `during` got key-2 tickets on its resumed connection: accepted.
    assert_eq!(kind(&during), RESUMED);
    // Bad input: refused, keys unchanged.
    assert_eq!(
        rn_ticketer_set_keys(t, [0u8; 10].as_ptr(), 10, 60),
        rustls_result::InvalidParameter
    );
    assert_eq!(
        rn_ticketer_set_keys(null(), [0u8; 80].as_ptr(), 80, 60),
        rustls_result::NullParameter
    );
    assert_eq!(kind(&during), RESUMED);
    rn_ticketer_free(t);
    rustls_certified_key::rustls_certified_key_free(key);
}

#[test]
fn finish_rejects_null_and_empty_inputs() {
    let mut out = null();
    assert_eq!(
        rn_server_config_finish(null(), null(), 0, null(), null(), 0, &mut out),
        rustls_result::NullParameter
    );
    assert!(out.is_null());
    assert!(rn_session_cache_new(0, false).is_null());
}
