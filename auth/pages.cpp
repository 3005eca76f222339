// HTML for the reset and confirmation pages: plain HTML and CSS, no framework.
#include "auth/pages.h"

namespace latch::pages {

namespace {

const char *kStyle = R"(<style>
  body { font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; padding: 1rem; }
  main { max-width: 26rem; margin: 3rem auto; background: #fff; padding: 1.5rem 1.75rem;
         border-radius: 10px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
  h1 { font-size: 1.35rem; margin-top: 0; }
  label { display: block; margin: 1rem 0 .3rem; font-weight: 600; }
  input { width: 100%; box-sizing: border-box; padding: .6rem; font-size: 1rem;
          border: 1px solid #bbb; border-radius: 6px; }
  button { margin-top: 1.25rem; width: 100%; padding: .7rem; font-size: 1rem; border: 0;
           border-radius: 6px; background: #2457c5; color: #fff; cursor: pointer; }
  button:disabled { background: #8aa3d6; }
  .msg { margin-top: 1rem; padding: .7rem; border-radius: 6px; }
  .error { background: #fde8e8; color: #8a1c1c; }
  .ok { background: #e6f6ea; color: #1d6b34; }
</style>)";

std::string escape_html(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

} // namespace

std::string reset_password_page(bool via_v1) {
  std::string html = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Choose a new password</title>)";
  html += kStyle;
  html += R"(</head><body><main>
<h1>Choose a new password</h1>
<form id="reset">
  <label for="password">New password</label>
  <input id="password" name="password" type="password" autocomplete="new-password" required>
  <label for="confirm">Repeat the new password</label>
  <input id="confirm" name="confirm" type="password" autocomplete="new-password" required>
  <button id="submit" type="submit">Set password</button>
</form>
<div id="message" class="msg" hidden></div>
</main>
<script>
const viaV1 = )";
  html += via_v1 ? "true" : "false";
  html += R"(;
const token = new URLSearchParams(location.search).get('token') || '';
const form = document.getElementById('reset');
const box = document.getElementById('message');
function show(text, ok) {
  box.textContent = text; box.className = 'msg ' + (ok ? 'ok' : 'error'); box.hidden = false;
}
if (!token) { show('This link has no reset token. Request a new reset mail.', false); form.hidden = true; }
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const pw = document.getElementById('password').value;
  const again = document.getElementById('confirm').value;
  if (pw !== again) { show('The two passwords do not match.', false); return; }
  document.getElementById('submit').disabled = true;
  try {
    const res = viaV1
      ? await fetch('/api/v1/password-reset-confirm?token=' + encodeURIComponent(token), {
          method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({new_password: pw, new_password_confirm: again})})
      : await fetch('/auth/reset-password', {
          method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({reset_token: token, new_password: pw})});
    const body = await res.json().catch(() => ({}));
    if (res.ok) { show('Your password has been changed. You can sign in with it now.', true); form.hidden = true; return; }
    const text = body.error || body.message || 'The password could not be changed.';
    show(/token/i.test(text) ? 'This reset link is invalid, expired or already used. Request a new one.' : text, false);
  } catch (err) {
    show('The server could not be reached. Try again.', false);
  }
  document.getElementById('submit').disabled = false;
});
</script></body></html>
)";
  return html;
}

std::string verify_email_page(bool ok, const std::string &message) {
  std::string html = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Email confirmation</title>)";
  html += kStyle;
  html += "</head><body><main><h1>Email confirmation</h1><div class=\"msg ";
  html += ok ? "ok" : "error";
  html += "\">" + escape_html(message) + "</div></main></body></html>\n";
  return html;
}

} // namespace latch::pages
