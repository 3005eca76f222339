// TLS server contexts from PEM files (OpenSSL): checked at start, used by the listener.
#pragma once

#include <string>

struct ssl_ctx_st;

namespace latch {

// A TLS server context (TLS 1.2 and up) for a PEM certificate chain and its private key, or
// null with *error naming the file and what is wrong with it. Never asks for a passphrase: an
// encrypted key fails to load instead. The caller frees it (SSL_CTX_free).
ssl_ctx_st *load_tls_context(const std::string &cert, const std::string &key, std::string *error);

} // namespace latch
