/*
 * tok_unicode.c - the character classes and conversions the tokenizer needs, defined the way
 * Hugging Face `tokenizers` (Rust) defines them: char::is_whitespace, the unicode_categories
 * crate's is_other / is_punctuation / is_mark_nonspacing, regex's \w, char::to_lowercase, and
 * Python's "replace" UTF-8 decoding for the bytes a C caller hands in. Categories come from
 * utf8proc; its Unicode version may be newer than the Rust crates', which only matters for
 * code points assigned since. It owns no state.
 */
#include <utf8proc.h>

#include "error.h"
#include "tokenizer.h"

/* Second-byte range and continuation count for a UTF-8 lead byte (Unicode Table 3-7). */
static int utf8_lead(unsigned char b, int *need, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        *need = 1;
    } else if (b == 0xE0) {
        *need = 2;
        *lo = 0xA0;
    } else if (b == 0xED) {
        *need = 2;
        *hi = 0x9F;
    } else if (b >= 0xE1 && b <= 0xEF) {
        *need = 2;
    } else if (b == 0xF0) {
        *need = 3;
        *lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
        *need = 3;
    } else if (b == 0xF4) {
        *need = 3;
        *hi = 0x8F;
    } else {
        return 0;
    }
    return 1;
}

ptm_status ptm__tok_utf8_decode(const char *s, size_t n, struct ptm__tok_cps *out)
{
    const unsigned char *u = (const unsigned char *)s;
    ptm_status st = ptm__tok_cps_reserve(out, n);
    if (st != PTM_OK) {
        return st;
    }
    size_t i = 0;
    while (i < n) {
        unsigned char b = u[i];
        if (b < 0x80) {
            out->v[out->n++] = b;
            i++;
            continue;
        }
        int need;
        unsigned char lo, hi;
        if (!utf8_lead(b, &need, &lo, &hi)) {
            out->v[out->n++] = 0xFFFD;
            i++;
            continue;
        }
        uint32_t cp = b & (0x3F >> need);
        size_t j = i + 1;
        int k = 0;
        for (; k < need && j < n; k++, j++) {
            unsigned char c = u[j];
            unsigned char l = k == 0 ? lo : 0x80, h = k == 0 ? hi : 0xBF;
            if (c < l || c > h) {
                break;
            }
            cp = (cp << 6) | (c & 0x3F);
        }
        /* An incomplete sequence is one maximal subpart: one U+FFFD for all its bytes. */
        out->v[out->n++] = k == need ? cp : 0xFFFD;
        i = j;
    }
    return PTM_OK;
}

size_t ptm__tok_utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

ptm_status ptm__tok_utf8_encode(const uint32_t *cps, size_t n, struct ptm__tok_bytes *out)
{
    if (n > SIZE_MAX / 4) {
        return ptm__fail(PTM_E_NOMEM, "tokenizer: text too long");
    }
    ptm_status st = ptm__tok_bytes_reserve(out, 4 * n);
    if (st != PTM_OK) {
        return st;
    }
    unsigned char *p = (unsigned char *)out->v + out->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (c < 0x80) {
            *p++ = (unsigned char)c;
        } else if (c < 0x800) {
            *p++ = (unsigned char)(0xC0 | (c >> 6));
            *p++ = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *p++ = (unsigned char)(0xE0 | (c >> 12));
            *p++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (unsigned char)(0x80 | (c & 0x3F));
        } else {
            *p++ = (unsigned char)(0xF0 | (c >> 18));
            *p++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            *p++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *p++ = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    out->n = (size_t)((char *)p - out->v);
    out->v[out->n] = '\0';
    return PTM_OK;
}

int ptm__tok_is_whitespace(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 0x09 && c <= 0x0D) || c == 0x20;
    }
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static utf8proc_category_t category(uint32_t c)
{
    return utf8proc_category((utf8proc_int32_t)c);
}

int ptm__tok_is_other(uint32_t c)
{
    if (c < 0x80) {
        return c < 0x20 || c == 0x7F;
    }
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
           k == UTF8PROC_CATEGORY_CS;
}

int ptm__tok_is_mn(uint32_t c)
{
    return c >= 0x300 && category(c) == UTF8PROC_CATEGORY_MN;
}

int ptm__tok_is_mark(uint32_t c)
{
    if (c < 0x300) {
        return 0;
    }
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

int ptm__tok_is_punct(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    }
    utf8proc_category_t k = category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int ptm__tok_is_numeric(uint32_t c)
{
    if (c < 0x80) {
        return c >= '0' && c <= '9';
    }
    utf8proc_category_t k = category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

int ptm__tok_is_word(uint32_t c)
{
    if (c < 0x80) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    }
    if (c == 0x200C || c == 0x200D) {
        return 1; /* Join_Control */
    }
    /* Other_Alphabetic code points outside L, M and Nl: circled and squared Latin letters. */
    if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189)) {
        return 1;
    }
    switch (category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

int ptm__tok_is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

size_t ptm__tok_to_lower(uint32_t c, uint32_t out[2])
{
    if (c < 0x80) {
        out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        return 1;
    }
    /* The one unconditional multi-character lowercase in SpecialCasing.txt. */
    if (c == 0x130) {
        out[0] = 0x69;
        out[1] = 0x307;
        return 2;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
    return 1;
}
