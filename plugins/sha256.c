/* sha256: the lowercase hex SHA-256 digest of the payload (libsodium). */
#include <zpipe/plugin.h>

#include <sodium.h>

static int sha256_init(const zpipe_host_t *host, void **state)
{
    (void)host;
    *state = NULL;
    return sodium_init() < 0 ? ZPIPE_ERROR : ZPIPE_OK;
}

static int sha256_process(void *state, zpipe_call_t *call)
{
    (void)state;
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(digest, call->input, call->input_len);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    if (zpipe_append(call, hex, 2 * crypto_hash_sha256_BYTES) < 0)
        return zpipe_fail(call, ZPIPE_ERROR, "output too large");
    return ZPIPE_OK;
}

static const zpipe_plugin_t sha256_plugin = {
    ZPIPE_PLUGIN_HEADER, .name = "sha256",
    .version = "1.0",    .description = "hex SHA-256 digest of the payload",
    .init = sha256_init, .process = sha256_process,
};

ZPIPE_PLUGIN_EXPORT(sha256_plugin)
