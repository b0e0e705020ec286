// The load generator of bench/store-resume.js (issue 21): TLS session
// resumption from outside Node, with the system's OpenSSL (libssl), so the
// client is neither stack under test. Two phases, one invocation each:
//
//   resume-client make   --port A ... --sessions FILE   full handshakes on A,
//                                                       their sessions saved
//   resume-client resume --port B ... --sessions FILE   each saved session
//       [--first K]                                     resumed once on B
//   resume-client version                               the OpenSSL it runs on
//
// A and B are the same server (its own cache or tickets) or two instances
// sharing state (a Redis store, a ticket key file): a session made on A and
// resumed on B then really went through the shared state. Every connection
// does its handshake, sends --echo bytes and reads them back (through the
// terminator to an echo backend), sends close_notify and FIN and waits for
// the server's close, as bench/client.js does. --concurrency threads, each
// with blocking sockets; the handshake latency (connect() to SSL_connect()
// done) of every connection is kept, and the phase prints one JSON object:
// counts, what was negotiated, errors, latency percentiles.
//
// Build: cc -O2 -pthread resume-client.c -o resume-client -lssl -lcrypto
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 8
#define IO_TIMEOUT_S 20

struct histogram {
  const char *name[MAX_KEYS];
  long count[MAX_KEYS];
  int n;
};

static struct {
  int make;
  int port;
  const char *servername, *ca, *cipher, *sessions;
  int tls13, no_ticket, echo, count, first, concurrency;
} opt = {.servername = "localhost", .echo = 64, .concurrency = 16};

static SSL_CTX *ctx;
static SSL_SESSION **sessions;  // make: filled; resume: read from the file
static long *latency_us;        // per connection, -1 if it failed
static atomic_int next_index;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  long completed, resumed, not_resumed, with_ticket, echoed, errors;
  struct histogram protocols, ciphers, groups, error_codes;
} st;

static void bump(struct histogram *h, const char *name) {
  for (int i = 0; i < h->n; i++)
    if (strcmp(h->name[i], name) == 0) {
      h->count[i]++;
      return;
    }
  if (h->n < MAX_KEYS) {
    h->name[h->n] = strdup(name);
    h->count[h->n++] = 1;
  }
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void fail(const char *code) {
  pthread_mutex_lock(&lock);
  st.errors++;
  bump(&st.error_codes, code);
  pthread_mutex_unlock(&lock);
}

/** Reads exactly n bytes of plaintext; 0 on success. */
static int read_exact(SSL *ssl, unsigned char *buf, int n) {
  int got = 0;
  while (got < n) {
    int r = SSL_read(ssl, buf + got, n - got);
    if (r <= 0) return -1;
    got += r;
  }
  return 0;
}

/**
 * One connection: handshake (resuming `session` if given), echo, close.
 * Returns the session the connection ended with (make phase), or NULL.
 */
static SSL_SESSION *connection(int index, SSL_SESSION *session) {
  static const unsigned char payload[1024] = {'r', 'e', 's', 'u', 'm', 'e'};
  unsigned char back[sizeof payload];
  SSL_SESSION *out = NULL;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(opt.port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  int one = 1;
  struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
  double t0 = now_us();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    fail("socket");
    return NULL;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fail(errno == ETIMEDOUT || errno == EAGAIN ? "connect-timeout" : "connect");
    close(fd);
    return NULL;
  }
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, opt.servername);
  SSL_set1_host(ssl, opt.servername);
  if (session != NULL) SSL_set_session(ssl, session);
  if (SSL_connect(ssl) != 1) {
    unsigned long e = ERR_get_error();
    fail(e != 0 ? ERR_reason_error_string(e) != NULL ? ERR_reason_error_string(e) : "handshake" : "handshake-eof");
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return NULL;
  }
  long us = (long)(now_us() - t0);
  int reused = SSL_session_reused(ssl);
  const char *group = "none";
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  int nid = SSL_get_negotiated_group(ssl);
  if (nid != 0 && nid != NID_undef) group = SSL_group_to_name(ssl, nid) != NULL ? SSL_group_to_name(ssl, nid) : "unknown";
#endif
  // The echo through the backend; reading it also takes in the server's
  // TLS 1.3 tickets, which come before any data.
  int echoed = opt.echo <= 0;
  if (opt.echo > 0 && SSL_write(ssl, payload, opt.echo) == opt.echo && read_exact(ssl, back, opt.echo) == 0 &&
      memcmp(back, payload, opt.echo) == 0)
    echoed = 1;
  if (opt.make && echoed) {
    out = SSL_get1_session(ssl);
    if (out != NULL && !SSL_SESSION_is_resumable(out)) {
      SSL_SESSION_free(out);
      out = NULL;
    }
  }
  const SSL_SESSION *held = SSL_get_session(ssl);
  int ticket = held != NULL && SSL_SESSION_has_ticket(held);
  // close_notify, FIN, then wait for the server's close: its teardown
  // belongs to this connection.
  SSL_shutdown(ssl);
  shutdown(fd, SHUT_WR);
  char sink[4096];
  while (recv(fd, sink, sizeof sink, 0) > 0) {
  }
  pthread_mutex_lock(&lock);
  bump(&st.protocols, SSL_get_version(ssl));
  bump(&st.ciphers, SSL_CIPHER_standard_name(SSL_get_current_cipher(ssl)));
  bump(&st.groups, group);
  if (reused)
    st.resumed++;
  else
    st.not_resumed++;
  if (ticket) st.with_ticket++;
  if (!echoed) {
    st.errors++;
    bump(&st.error_codes, "echo");
  } else {
    if (opt.echo > 0) st.echoed++;
    st.completed++;
    latency_us[index] = us;
  }
  if (opt.make && echoed && out == NULL) {
    st.errors++;
    bump(&st.error_codes, "no-resumable-session");
  }
  pthread_mutex_unlock(&lock);
  SSL_free(ssl);
  close(fd);
  return out;
}

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    int i = atomic_fetch_add(&next_index, 1);
    if (i >= opt.count) return NULL;
    if (opt.make)
      sessions[i] = connection(i, NULL);
    else
      connection(i, sessions[opt.first + i]);
  }
}

static int save_sessions(void) {
  FILE *f = fopen(opt.sessions, "wb");
  if (f == NULL) return -1;
  for (int i = 0; i < opt.count; i++) {
    unsigned char *der = NULL;
    int len = sessions[i] == NULL ? 0 : i2d_SSL_SESSION(sessions[i], &der);
    uint32_t be = htonl(len > 0 ? (uint32_t)len : 0);
    fwrite(&be, 4, 1, f);
    if (len > 0) fwrite(der, 1, len, f);
    OPENSSL_free(der);
  }
  return fclose(f);
}

/** Reads the saved sessions; returns how many, -1 on a file error. */
static int load_sessions(void) {
  FILE *f = fopen(opt.sessions, "rb");
  if (f == NULL) return -1;
  int cap = 1024, n = 0;
  sessions = calloc(cap, sizeof *sessions);
  uint32_t be;
  while (fread(&be, 4, 1, f) == 1) {
    uint32_t len = ntohl(be);
    unsigned char *der = malloc(len > 0 ? len : 1);
    if (len > 0 && fread(der, 1, len, f) != len) {
      free(der);
      fclose(f);
      return -1;
    }
    const unsigned char *p = der;
    if (n == cap) sessions = realloc(sessions, (cap *= 2) * sizeof *sessions);
    sessions[n++] = len > 0 ? d2i_SSL_SESSION(NULL, &p, len) : NULL;
    free(der);
  }
  fclose(f);
  return n;
}

static int by_value(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static void print_histogram(const char *name, const struct histogram *h) {
  printf("\"%s\":{", name);
  for (int i = 0; i < h->n; i++) printf("%s\"%s\":%ld", i > 0 ? "," : "", h->name[i], h->count[i]);
  printf("}");
}

static void usage(void) {
  fprintf(stderr,
          "usage: resume-client make|resume --port P --ca FILE --cipher NAME --tls 1.2|1.3 --count N --sessions FILE\n"
          "       [--first K] [--concurrency C] [--echo BYTES] [--no-ticket] [--servername NAME]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "version") == 0) {
    printf("%s\n", OpenSSL_version(OPENSSL_VERSION));
    return 0;
  }
  if (argc < 2 || (strcmp(argv[1], "make") != 0 && strcmp(argv[1], "resume") != 0)) usage();
  opt.make = strcmp(argv[1], "make") == 0;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--no-ticket") == 0) {
      opt.no_ticket = 1;
      continue;
    }
    if (v == NULL) usage();
    i++;
    if (strcmp(a, "--port") == 0)
      opt.port = atoi(v);
    else if (strcmp(a, "--ca") == 0)
      opt.ca = v;
    else if (strcmp(a, "--cipher") == 0)
      opt.cipher = v;
    else if (strcmp(a, "--tls") == 0)
      opt.tls13 = strcmp(v, "1.3") == 0;
    else if (strcmp(a, "--count") == 0)
      opt.count = atoi(v);
    else if (strcmp(a, "--first") == 0)
      opt.first = atoi(v);
    else if (strcmp(a, "--concurrency") == 0)
      opt.concurrency = atoi(v);
    else if (strcmp(a, "--echo") == 0)
      opt.echo = atoi(v);
    else if (strcmp(a, "--sessions") == 0)
      opt.sessions = v;
    else if (strcmp(a, "--servername") == 0)
      opt.servername = v;
    else
      usage();
  }
  if (opt.port <= 0 || opt.ca == NULL || opt.cipher == NULL || opt.sessions == NULL || opt.count <= 0 ||
      opt.concurrency <= 0 || opt.echo > 1024)
    usage();

  ctx = SSL_CTX_new(TLS_client_method());
  int version = opt.tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(ctx, version);
  SSL_CTX_set_max_proto_version(ctx, version);
  // The forced suite, as bench/client.js forces it; X25519 first, as every
  // client of the peer scenarios offers it.
  if ((opt.tls13 ? SSL_CTX_set_ciphersuites(ctx, opt.cipher) : SSL_CTX_set_cipher_list(ctx, opt.cipher)) != 1 ||
      SSL_CTX_load_verify_locations(ctx, opt.ca, NULL) != 1) {
    fprintf(stderr, "resume-client: bad --cipher or --ca\n");
    return 2;
  }
  SSL_CTX_set1_groups_list(ctx, "X25519:P-256");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  // TLS 1.2 without the SessionTicket extension: the session id is what
  // resumes, so the server's session cache (or store) is what is measured.
  if (opt.no_ticket) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  if (opt.make) {
    sessions = calloc(opt.count, sizeof *sessions);
  } else {
    int n = load_sessions();
    if (n < 0 || opt.first + opt.count > n) {
      fprintf(stderr, "resume-client: %s holds %d sessions, %d wanted from %d\n", opt.sessions, n, opt.count, opt.first);
      return 2;
    }
  }
  latency_us = malloc(opt.count * sizeof *latency_us);
  for (int i = 0; i < opt.count; i++) latency_us[i] = -1;

  int threads = opt.concurrency < opt.count ? opt.concurrency : opt.count;
  pthread_t *tid = calloc(threads, sizeof *tid);
  double t0 = now_us();
  for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, worker, NULL);
  for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
  double wall_us = now_us() - t0;
  if (opt.make && save_sessions() != 0) {
    fprintf(stderr, "resume-client: cannot write %s\n", opt.sessions);
    return 1;
  }

  long n = 0;
  for (int i = 0; i < opt.count; i++)
    if (latency_us[i] >= 0) latency_us[n++] = latency_us[i];
  qsort(latency_us, n, sizeof *latency_us, by_value);
  double sum = 0;
  for (long i = 0; i < n; i++) sum += latency_us[i];
  // Nearest rank: the smallest value with at least p % of the values at or below it.
  long p50 = n > 0 ? latency_us[(n * 50 + 99) / 100 - 1] : -1;
  long p90 = n > 0 ? latency_us[(n * 90 + 99) / 100 - 1] : -1;
  long p99 = n > 0 ? latency_us[(n * 99 + 99) / 100 - 1] : -1;
  printf("{\"phase\":\"%s\",\"completed\":%ld,\"resumed\":%ld,\"notResumed\":%ld,\"withTicket\":%ld,\"echoed\":%ld,\"errors\":%ld,",
         opt.make ? "make" : "resume", st.completed, st.resumed, st.not_resumed, st.with_ticket, st.echoed, st.errors);
  print_histogram("errorCodes", &st.error_codes);
  printf(",");
  print_histogram("protocols", &st.protocols);
  printf(",");
  print_histogram("ciphers", &st.ciphers);
  printf(",");
  print_histogram("groups", &st.groups);
  printf(",\"wallMs\":%.3f,\"latencyUs\":{\"n\":%ld,\"mean\":%.1f,\"p50\":%ld,\"p90\":%ld,\"p99\":%ld,\"max\":%ld},\"openssl\":\"%s\"}\n",
         wall_us / 1e3, n, n > 0 ? sum / n : -1.0, p50, p90, p99, n > 0 ? latency_us[n - 1] : -1,
         OpenSSL_version(OPENSSL_VERSION));
  return 0;
}
