// The small HTML pages the binary serves itself: password reset form, email confirmation.
#pragma once

#include <string>

namespace latch::pages {

// The default RESET_PASSWORD_URL target. via_v1: posts to v1's password-reset-confirm,
// else to flask's reset-password.
std::string reset_password_page(bool via_v1);
// What the reset page loads from its own origin (GET /reset-password.js and .css), so its
// Content-Security-Policy needs no 'unsafe-inline'.
std::string reset_password_script();
std::string reset_password_stylesheet();

// What a browser sees after opening v1's address-confirmation link.
std::string verify_email_page(bool ok, const std::string &message);

} // namespace latch::pages
