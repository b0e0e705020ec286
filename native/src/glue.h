// C declarations of the Rust glue in native/rust (see its doc comments for
// ownership). Everything else comes from rustls-ffi's rustls.h.
#ifndef RUSTLS_NODE_GLUE_H
#define RUSTLS_NODE_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// rustls.h declares `enum rustls_result` and, before C23, also
// `typedef uint32_t rustls_result`: fine in C, a redeclaration in C++. Its
// C23 branch (the same enum with a fixed uint32_t underlying type, so the
// same ABI) is valid C++, so the header is read as C23 here.
// It has no extern "C" block of its own.
#if defined(__cplusplus)
#pragma push_macro("__STDC_VERSION__")
#undef __STDC_VERSION__
#define __STDC_VERSION__ 202311L
extern "C" {
#include "rustls.h"
}
#pragma pop_macro("__STDC_VERSION__")
#else
#include "rustls.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rn_session_cache rn_session_cache;
typedef struct rn_ticketer rn_ticketer;

rn_session_cache *rn_session_cache_new(size_t size, bool report);
void rn_session_cache_set_report(const rn_session_cache *cache, bool report);
bool rn_session_cache_contains(const rn_session_cache *cache, const uint8_t *key, size_t key_len);
typedef void (*rn_session_callback)(void *userdata, const uint8_t *key, size_t key_len, const uint8_t *value,
                                    size_t value_len);
size_t rn_session_cache_take_new(const rn_session_cache *cache, rn_session_callback callback, void *userdata);
void rn_session_preload(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len);
bool rn_session_preload_clear(void);
rn_session_cache *rn_session_cache_clone(const rn_session_cache *cache);
void rn_session_cache_free(rn_session_cache *cache);

rustls_result rn_ticketer_new(const uint8_t *material, size_t len, uint32_t lifetime_secs, rn_ticketer **out);
rustls_result rn_ticketer_set_keys(const rn_ticketer *ticketer, const uint8_t *material, size_t len,
                                   uint32_t lifetime_secs);
void rn_ticketer_free(rn_ticketer *ticketer);

rustls_result rn_server_config_finish(const struct rustls_server_config *config,
                                      const struct rustls_certified_key *const *keys, size_t keys_len,
                                      const rn_session_cache *cache, const rn_ticketer *ticketer,
                                      size_t send_tls13_tickets, const struct rustls_server_config **config_out);

void rn_reset_chosen_certificate(void);
ptrdiff_t rn_last_chosen_certificate(void);

#ifdef __cplusplus
}
#endif

#endif
