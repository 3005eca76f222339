// TLS server contexts from PEM files.
#include "auth/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

namespace latch {

namespace {

// The first OpenSSL error queued, as text, and the queue emptied.
std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  const char *reason = e ? ERR_reason_error_string(e) : nullptr;
  return reason ? reason : "unknown error";
}

// Never asks for a passphrase on the terminal: an encrypted key fails to load instead.
int no_passphrase(char *, int, int, void *) {
  return 0;
}

using Context = std::unique_ptr<SSL_CTX, void (*)(SSL_CTX *)>;

Context new_context() {
  Context ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (ctx) SSL_CTX_set_default_passwd_cb(ctx.get(), no_passphrase);
  return ctx;
}

} // namespace

ssl_ctx_st *load_tls_context(const std::string &cert, const std::string &key, std::string *error) {
  auto fail = [&](std::string message) -> ssl_ctx_st * {
    if (error) *error = std::move(message);
    return nullptr;
  };
  const std::pair<const char *, const std::string *> files[] = {{"--tls-cert", &cert},
                                                                {"--tls-key", &key}};
  for (const auto &[flag, path] : files) {
    std::unique_ptr<FILE, int (*)(FILE *)> f(std::fopen(path->c_str(), "r"), std::fclose);
    char byte = 0;
    if (!f || (std::fread(&byte, 1, 1, f.get()) != 1 && std::ferror(f.get())))
      return fail(std::string(flag) + " " + *path + ": cannot read it: " + std::strerror(errno));
  }
  Context ctx = new_context();
  if (!ctx) return fail("cannot start OpenSSL: " + openssl_reason());
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1)
    return fail("--tls-cert " + cert + ": not a PEM certificate chain (" + openssl_reason() + ")");
  // The key alone first, so a key that is not one is told apart from a key of another pair.
  Context key_only = new_context();
  if (!key_only) return fail("cannot start OpenSSL: " + openssl_reason());
  if (SSL_CTX_use_PrivateKey_file(key_only.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    ERR_clear_error();
    return fail("--tls-key " + key + ": not a PEM private key, or one with a passphrase");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return fail("--tls-key " + key + ": not the key of the certificate in " + cert);
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // An idle connection keeps no TLS buffers: thousands of keep-alive clients cost little.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx.release();
}

} // namespace latch
