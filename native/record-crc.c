/*
 * Record checksums for the file log (src/storage/filelog/record.ts and crc.ts): zlib's CRC-32,
 * the same values as `zlib.crc32`.
 *
 * Why native: a record's CRC cost ~250 ns in JavaScript at 256 B (~1 ns a byte, a quarter of
 * a small durable publish's CPU), and calling zlib costs ~200 ns a call whatever the size.
 * Here `seal` walks every record of a staged run in one call (~65 ns of call overhead for a
 * run of up to 16 KiB), computing each CRC with carry-less multiplication where the CPU has
 * it (~0.1 ns a byte; 37 ns for a 280-byte record) and slicing-by-8 tables otherwise (~0.5 ns
 * a byte). Layout of a record: u32 length at +4, u32 CRC at +8 of bytes 12 .. end.
 *
 * The same addon also makes many small copies in one call (`copy`), tunes glibc's heap for a
 * broker's socket reads (`heapPad`) and restarts a broker in place (`exec`): each says why.
 */
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

static uint32_t table[8][256];

static void init_table(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = table[0][n];
    for (int k = 1; k < 8; k++) {
      c = table[0][c & 0xff] ^ (c >> 8);
      table[k][n] = c;
    }
  }
}

static uint32_t table_crc32(uint32_t crc, const uint8_t *p, size_t n) {
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + 4, 4);
    a ^= c;
    c = table[7][a & 0xff] ^ table[6][(a >> 8) & 0xff] ^ table[5][(a >> 16) & 0xff] ^ table[4][a >> 24] ^
        table[3][b & 0xff] ^ table[2][(b >> 8) & 0xff] ^ table[1][(b >> 16) & 0xff] ^ table[0][b >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_CLMUL_CODE 1

/*
 * Folding with carry-less multiplication (Intel, "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ", 2009; the constants are those of the reflected zlib polynomial used by
 * Linux's crc32-pclmul and Chromium's zlib). Takes len >= 64, a multiple of 16, and the
 * running CRC in its inverted form; returns it in the same form.
 */
__attribute__((target("pclmul,sse4.1"))) static uint32_t clmul_crc32(const uint8_t *buf, size_t len, uint32_t crc) {
  const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596, 0x0154442bd4);
  const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009e, 0x01751997d0);
  const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124);
  const __m128i poly = _mm_set_epi64x(0x01f7011641, 0x01db710641);
  const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
  __m128i x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
  __m128i x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
  x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
  buf += 64;
  len -= 64;
  while (len >= 64) {
    __m128i y1 = _mm_clmulepi64_si128(x1, k1k2, 0x00), y2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
    __m128i y3 = _mm_clmulepi64_si128(x3, k1k2, 0x00), y4 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
    x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
    x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
    x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, y1), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
    x2 = _mm_xor_si128(_mm_xor_si128(x2, y2), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
    x3 = _mm_xor_si128(_mm_xor_si128(x3, y3), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
    x4 = _mm_xor_si128(_mm_xor_si128(x4, y4), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
    buf += 64;
    len -= 64;
  }
  /* Four lanes into one, then the remaining 16-byte blocks. */
  __m128i next[3] = {x2, x3, x4};
  for (int i = 0; i < 3; i++) {
    __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), lo), next[i]);
  }
  while (len >= 16) {
    __m128i lo = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, lo), _mm_loadu_si128((const __m128i *)buf));
    buf += 16;
    len -= 16;
  }
  /* 128 bits to 64, to 32, then Barrett reduction. */
  x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
  x2 = _mm_srli_si128(x1, 4);
  x1 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), k5, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, mask32), poly, 0x10);
  x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, mask32), poly, 0x00);
  x1 = _mm_xor_si128(x1, x2);
  return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

static int use_clmul = 0;

/* The CRC-32 of p[0..n) continuing from `crc` (zlib's crc32(crc, p, n)). */
static inline uint32_t crc32_of(uint32_t crc, const uint8_t *p, size_t n) {
#ifdef HAVE_CLMUL_CODE
  if (use_clmul && n >= 64) {
    size_t folded = n & ~(size_t)15;
    crc = ~clmul_crc32(p, folded, ~crc);
    p += folded;
    n -= folded;
  }
#endif
  return table_crc32(crc, p, n);
}

static inline uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

#define HEADER_BYTES 32
#define CRC_FROM 12

/*
 * Reads (buffer, from, to[, crc]) and checks that [from, to) lies inside the buffer; `crc`,
 * when asked for, is 0 if left out.
 */
static int args_range(napi_env env, napi_callback_info info, uint8_t **data, uint32_t *from, uint32_t *to, uint32_t *crc) {
  size_t argc = 4;
  napi_value argv[4];
  void *raw;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) goto bad;
  if (napi_get_buffer_info(env, argv[0], &raw, &len) != napi_ok) goto bad;
  if (napi_get_value_uint32(env, argv[1], from) != napi_ok) goto bad;
  if (napi_get_value_uint32(env, argv[2], to) != napi_ok) goto bad;
  if (*from > *to || *to > len) goto bad;
  if (crc) {
    *crc = 0;
    if (argc > 3 && napi_get_value_uint32(env, argv[3], crc) != napi_ok) goto bad;
  }
  *data = raw;
  return 1;
bad:
  napi_throw_range_error(env, NULL, "expected (buffer, from, to[, crc]) with from <= to <= buffer.length");
  return 0;
}

/*
 * seal(buf, from, to): buf[from..to) holds whole records laid end to end; writes each one's
 * CRC. Returns how many it sealed; throws when a length field does not fit the run.
 */
static napi_value seal(napi_env env, napi_callback_info info) {
  uint8_t *buf;
  uint32_t at, to, count = 0;
  if (!args_range(env, info, &buf, &at, &to, NULL)) return NULL;
  while (at < to) {
    uint32_t length = to - at >= HEADER_BYTES ? get_u32(buf + at + 4) : 0;
    if (length < HEADER_BYTES || length > to - at) {
      napi_throw_range_error(env, NULL, "a record's length does not fit the run being sealed");
      return NULL;
    }
    put_u32(buf + at + 8, crc32_of(0, buf + at + CRC_FROM, length - CRC_FROM));
    at += length;
    count++;
  }
  napi_value result;
  napi_create_uint32(env, count, &result);
  return result;
}

/*
 * crc32(buf, from, to, crc): the CRC-32 of buf[from..to) continuing from `crc` (the CRC of the
 * bytes before), as zlib.crc32(buf.subarray(from, to), crc) gives it.
 */
static napi_value crc32(napi_env env, napi_callback_info info) {
  uint8_t *buf;
  uint32_t from, to, crc;
  if (!args_range(env, info, &buf, &from, &to, &crc)) return NULL;
  napi_value result;
  napi_create_uint32(env, crc32_of(crc, buf + from, to - from), &result);
  return result;
}

/*
 * copy(dst, sources, ops, count): for each op i, ops[4i..4i+3] = (source index, source start,
 * destination start, length), copies sources[index][start..start+length) to dst at its
 * start. Every range is checked before anything is copied; a bad one throws a RangeError.
 * Why: a JavaScript range copy (Buffer#copy) makes a view of its source, ~55 ns and ~95
 * bytes of garbage each; the stage defers its payload copies and makes them here, one call
 * for a chunk's worth (src/storage/filelog/stage.ts).
 */
/* On the stack, per call (worker threads may share this addon): the stage's 16 KiB chunks
 * hold far fewer records with a deferred copy than this. */
#define MAX_COPY_SOURCES 512
static napi_value copy(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *dst;
  size_t dst_len;
  uint32_t nsources, count;
  napi_typedarray_type type;
  size_t ops_len;
  void *ops_data;
  bool is_array = false;
  if (argc < 4 || napi_get_buffer_info(env, argv[0], (void **)&dst, &dst_len) != napi_ok ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &nsources) != napi_ok || nsources > MAX_COPY_SOURCES ||
      napi_get_typedarray_info(env, argv[2], &type, &ops_len, &ops_data, NULL, NULL) != napi_ok || type != napi_int32_array ||
      napi_get_value_uint32(env, argv[3], &count) != napi_ok || (size_t)count * 4 > ops_len) {
    napi_throw_range_error(env, NULL, "expected (buffer, buffer[], Int32Array of 4 per copy, count)");
    return NULL;
  }
  uint8_t *src_data[MAX_COPY_SOURCES];
  size_t src_len[MAX_COPY_SOURCES];
  for (uint32_t s = 0; s < nsources; s++) {
    napi_value el;
    if (napi_get_element(env, argv[1], s, &el) != napi_ok || napi_get_buffer_info(env, el, (void **)&src_data[s], &src_len[s]) != napi_ok) {
      napi_throw_range_error(env, NULL, "every source must be a buffer");
      return NULL;
    }
  }
  const int32_t *op = (const int32_t *)ops_data;
  for (uint32_t i = 0; i < count; i++) {
    int32_t s = op[4 * i], from = op[4 * i + 1], at = op[4 * i + 2], n = op[4 * i + 3];
    if (s < 0 || (uint32_t)s >= nsources || from < 0 || at < 0 || n < 0 || (size_t)from + (size_t)n > src_len[s] || (size_t)at + (size_t)n > dst_len) {
      napi_throw_range_error(env, NULL, "a copy's range lies outside its source or the destination");
      return NULL;
    }
  }
  for (uint32_t i = 0; i < count; i++) {
    const int32_t *o = op + 4 * i;
    memcpy(dst + o[2], src_data[o[0]] + o[1], (size_t)o[3]);
  }
  return NULL;
}

/*
 * heapPad(bytes): how much free memory glibc keeps at the top of the heap when it grows or
 * trims it (M_TOP_PAD), with blocks up to 32 MiB from the heap (M_MMAP_THRESHOLD, below);
 * true if set, false where the C library is not glibc.
 * Why: every socket read in Node is a fresh 64 KiB buffer, freed when V8 collects it. With
 * glibc's default pad (128 KiB) the heap shrinks back after each collection and grows again
 * under the next reads, and the kernel zeroes and maps those pages each time: relaying 1 GB
 * through one Node process took ~1.2 s of CPU, ~0.95 s with a 16 MiB pad
 * (npm run bench:relay; docs/performance.md, eighteenth round).
 */
static napi_value heap_pad(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double bytes = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_double(env, argv[0], &bytes) != napi_ok || !(bytes >= 0 && bytes <= 1073741824.0)) {
    napi_throw_range_error(env, NULL, "heapPad: bytes must be a number from 0 to 1 GiB");
    return NULL;
  }
  bool done = false;
#if defined(__GLIBC__)
  /* Setting any of these turns off glibc's sliding mmap threshold, which would otherwise have
   * risen to the largest block freed so far: without it every block from 128 KiB up (the file
   * log's read windows) was mapped and unmapped afresh, and replays ran at half speed. So the
   * threshold is fixed where the sliding one stops (32 MiB on 64-bit). */
  done = mallopt(M_TOP_PAD, (int)bytes) == 1 && mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1;
#endif
  napi_value result;
  napi_get_boolean(env, done, &result);
  return result;
}

/* A JavaScript array of strings as a NULL-terminated char* array (each string malloc'd);
 * NULL, with a RangeError thrown, if it is not one. */
static char **string_array(napi_env env, napi_value value, const char *what) {
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array || napi_get_array_length(env, value, &n) != napi_ok) {
    napi_throw_range_error(env, NULL, what);
    return NULL;
  }
  /* On an error what was allocated is left: the caller reports it and goes on without exec. */
  char **out = calloc((size_t)n + 1, sizeof(char *));
  if (out == NULL) {
    napi_throw_error(env, NULL, "exec: out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    size_t len = 0;
    if (napi_get_element(env, value, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, NULL, 0, &len) != napi_ok) {
      napi_throw_range_error(env, NULL, what);
      return NULL;
    }
    out[i] = malloc(len + 1);
    if (out[i] == NULL || napi_get_value_string_utf8(env, item, out[i], len + 1, &len) != napi_ok) {
      napi_throw_error(env, NULL, "exec: out of memory");
      return NULL;
    }
  }
  return out;
}

/*
 * exec(file, argv, env): replaces this process with `file` run with `argv` and `env`
 * (execve), keeping its PID, its parent, stdin, stdout and stderr, and the descriptors it was
 * handed without close-on-exec (sockets from a service manager). Returns only on failure, by
 * throwing an Error with the system's reason.
 * Why: some V8 settings are read once, when the heap is set up, and Node refuses them in
 * NODE_OPTIONS (`--initial-old-space-size`), so a broker started without them starts again
 * with them (src/server/start-flags.ts); a child process in their place would change the PID
 * a service manager watches and stand between it and the signals it sends.
 */
static napi_value exec_(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  char file[4096];
  size_t len = 0;
  if (argc < 3 || napi_get_value_string_utf8(env, args[0], file, sizeof file, &len) != napi_ok || len == 0 || len >= sizeof file - 1) {
    napi_throw_range_error(env, NULL, "exec: expected (file, argv: string[], env: string[])");
    return NULL;
  }
  char **argv = string_array(env, args[1], "exec: argv must be an array of strings");
  if (argv == NULL) return NULL;
  char **envp = string_array(env, args[2], "exec: env must be an array of strings");
  if (envp == NULL) return NULL;
  /* Node opens stdin, stdout and stderr close-on-exec: the new image would start without them. */
  for (int fd = 0; fd <= 2; fd++) {
    int flags = fcntl(fd, F_GETFD);
    if (flags != -1) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  /* Under --cpu-prof V8's sampler sends this thread SIGPROF; one pending across execve would
   * meet the default action (terminate) in the new image. Ignoring it discards it, and the new
   * Node sets its own dispositions at start. Put back if execve fails. */
  struct sigaction ignore, prof;
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  bool saved = sigaction(SIGPROF, &ignore, &prof) == 0;
  execve(file, argv, envp);
  int err = errno;
  if (saved) sigaction(SIGPROF, &prof, NULL);
  for (char **p = argv; *p; p++) free(*p);
  for (char **p = envp; *p; p++) free(*p);
  free(argv);
  free(envp);
  napi_throw_error(env, NULL, strerror(err));
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  init_table();
#ifdef HAVE_CLMUL_CODE
  __builtin_cpu_init();
  /* FLUCTUAT_NO_CLMUL=1 takes the table path anyway (its tests). */
  use_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1") && !getenv("FLUCTUAT_NO_CLMUL");
#endif
  napi_value fn, kind;
  napi_create_string_utf8(env, use_clmul ? "carry-less multiplication" : "tables", NAPI_AUTO_LENGTH, &kind);
  napi_set_named_property(env, exports, "implementation", kind);
  napi_create_function(env, "seal", NAPI_AUTO_LENGTH, seal, NULL, &fn);
  napi_set_named_property(env, exports, "seal", fn);
  napi_create_function(env, "crc32", NAPI_AUTO_LENGTH, crc32, NULL, &fn);
  napi_set_named_property(env, exports, "crc32", fn);
  napi_create_function(env, "copy", NAPI_AUTO_LENGTH, copy, NULL, &fn);
  napi_set_named_property(env, exports, "copy", fn);
  napi_create_function(env, "heapPad", NAPI_AUTO_LENGTH, heap_pad, NULL, &fn);
  napi_set_named_property(env, exports, "heapPad", fn);
  napi_create_function(env, "exec", NAPI_AUTO_LENGTH, exec_, NULL, &fn);
  napi_set_named_property(env, exports, "exec", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
