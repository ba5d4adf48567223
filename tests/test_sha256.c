/*
 * test_sha256.c - runtime/sha256.c against the FIPS 180-4 / NIST CSRC example vectors,
 * including messages that straddle the padding boundary and a split streaming input.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ptm/ptm.h"

/* Test hook exported by libptm (runtime/sha256.h). */
PTM_API void ptm__sha256_hex(const void *data, size_t n, char hex[65]);

static void check(const char *msg, const char *want)
{
    char hex[65];
    ptm__sha256_hex(msg, strlen(msg), hex);
    cr_assert_str_eq(hex, want, "sha256(\"%s\")", msg);
}

Test(sha256, empty_message)
{
    check("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

Test(sha256, one_block_abc)
{
    check("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

Test(sha256, two_block_448_bit_message)
{
    check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, long_896_bit_message)
{
    check("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
          "klmnopqrlmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

Test(sha256, one_million_a)
{
    size_t n = 1000000;
    char *buf = malloc(n);
    cr_assert_not_null(buf);
    memset(buf, 'a', n);
    char hex[65];
    ptm__sha256_hex(buf, n, hex);
    free(buf);
    cr_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
