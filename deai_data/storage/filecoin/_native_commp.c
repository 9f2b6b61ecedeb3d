/* Native commP subtree hashing for deai-data (optional: commp.py falls back to Python without it).
 *
 * tree_root(buffer) -> 32 bytes: the root of the binary tree of SHA-256 over 64-byte pairs, each digest's
 * top two bits cleared, over a power-of-two number of 32-byte nodes (FR32-padded data). The GIL is released
 * while hashing, so threads can share the work. SHA-256 compression uses the x86 SHA extensions when the
 * CPU has them (checked at run time with CPUID), else portable C (FIPS 180-4).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define DEAI_X86 1
#endif

/* round constants: first 32 bits of the fractional parts of the cube roots of the first 64 primes */
static const uint32_t K[64] = {
0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};
/* initial state: first 32 bits of the fractional parts of the square roots of the first 8 primes */
static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress_portable(uint32_t state[8], const uint8_t block[64]) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

#ifdef DEAI_X86
/* Four rounds: the schedule words in `w` plus their constants, through two sha256rnds2 steps. */
#define FOUR_ROUNDS(w, i)                                                          \
    do {                                                                           \
        __m128i wk = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&K[4 * (i)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);                              \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));     \
    } while (0)

__attribute__((target("sha,sse4.1,ssse3")))
static void compress_shani(uint32_t state[8], const uint8_t block[64]) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);
    __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);
    __m128i abef = _mm_alignr_epi8(dcba, hgfe, 8);
    __m128i cdgh = _mm_blend_epi16(hgfe, dcba, 0xF0);
    const __m128i abef0 = abef, cdgh0 = cdgh;
    __m128i m[4];
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16 * i)), bswap);
    for (int i = 0; i < 16; i++) {
        if (i >= 4) {  /* W[t..t+3] from the sixteen before: sigma0 (msg1), W[t-7..t-4], sigma1 (msg2) */
            __m128i next = _mm_add_epi32(_mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]),
                                         _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
            m[i & 3] = _mm_sha256msg2_epu32(next, m[(i + 3) & 3]);
        }
        FOUR_ROUNDS(m[i & 3], i);
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static int have_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return sha && ((c >> 19) & 1) && ((c >> 9) & 1);  /* SHA, SSE4.1, SSSE3 */
}
#endif

typedef void (*compress_fn)(uint32_t state[8], const uint8_t block[64]);
static compress_fn compress = compress_portable;

/* SHA-256 of exactly 64 bytes, masked to 254 bits: the commP node hash. */
static void node_hash(const uint8_t in[64], uint8_t out[32]) {
    static const uint8_t pad[64] = {0x80, [62] = 0x02, [63] = 0x00};  /* length: 512 bits */
    uint32_t state[8];
    memcpy(state, IV, sizeof state);
    compress(state, in);
    compress(state, pad);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(state[i] >> 8);
        out[4 * i + 3] = (uint8_t)state[i];
    }
    out[31] &= 0x3F;
}

static PyObject *tree_root(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    Py_ssize_t n = view.len;
    if (n < 32 || (n & (n - 1)) != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "tree_root needs a power-of-two number of 32-byte nodes");
        return NULL;
    }
    uint8_t root[32];
    uint8_t *scratch = n > 32 ? PyMem_RawMalloc((size_t)n / 2) : NULL;
    if (n > 32 && scratch == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    if (n == 32) {
        memcpy(root, view.buf, 32);
    } else {
        const uint8_t *level = view.buf;
        for (Py_ssize_t len = n; len > 32; len /= 2) {
            for (Py_ssize_t i = 0; i < len / 64; i++)
                node_hash(level + 64 * i, scratch + 32 * i);
            level = scratch;
        }
        memcpy(root, scratch, 32);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(scratch);
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)root, 32);
}

static PyObject *accelerated(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(compress != compress_portable);
}

/* use_portable(True) forces the portable compression (tests compare both); returns the previous state. */
static PyObject *use_portable(PyObject *self, PyObject *arg) {
    int previous = compress == compress_portable;
    int portable = PyObject_IsTrue(arg);
    if (portable < 0) return NULL;
    compress = compress_portable;
#ifdef DEAI_X86
    if (!portable && have_shani()) compress = compress_shani;
#endif
    return PyBool_FromLong(previous);
}

static PyMethodDef methods[] = {
    {"tree_root", tree_root, METH_VARARGS, "commP subtree root of FR32-padded data (GIL released)."},
    {"accelerated", accelerated, METH_NOARGS, "True when the CPU's SHA extensions are used."},
    {"use_portable", use_portable, METH_O, "Force (True) or release (False) the portable SHA-256."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native_commp", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native_commp(void) {
#ifdef DEAI_X86
    if (have_shani()) compress = compress_shani;
#endif
    return PyModule_Create(&module);
}
