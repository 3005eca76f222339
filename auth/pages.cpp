// HTML, CSS and script for the reset and confirmation pages: plain, no framework.
#include "auth/pages.h"

namespace latch::pages {

namespace {

// Shared by both pages: a single card, fluid up to 28rem wide, 17px text, 48px tap targets,
// inputs at 1rem or more (phones zoom into smaller ones), light and dark colour schemes.
const char *kStyle = R"PAGE(
  :root { color-scheme: light dark; --bg: #eef1f5; --card: #fff; --text: #1b1f24;
          --muted: #4f5863; --line: #8a939e; --accent: #1f5bd1; --accent-text: #fff;
          --ok-bg: #e4f4e8; --ok-text: #14532d; --ok-line: #2f8a4c;
          --err-bg: #fdeaea; --err-text: #7f1d1d; --err-line: #c53030; }
  @media (prefers-color-scheme: dark) {
    :root { --bg: #111418; --card: #1c2128; --text: #e6e9ed; --muted: #a4adb8; --line: #6b7480;
            --accent: #5b8def; --accent-text: #0b1220; --ok-bg: #12301e; --ok-text: #b7ebc6;
            --ok-line: #3fa063; --err-bg: #3a1717; --err-text: #fecaca; --err-line: #e05252; }
  }
  *, *::before, *::after { box-sizing: border-box; }
  [hidden] { display: none !important; }
  html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
  body { margin: 0; padding: 1rem; min-height: 100vh; background: var(--bg); color: var(--text);
         font: 1.0625rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  main { width: 100%; max-width: 28rem; margin: 1.5rem auto; background: var(--card);
         padding: 1.5rem 1.25rem; border-radius: 14px; box-shadow: 0 1px 3px rgba(0,0,0,.14); }
  @media (min-width: 40rem) { main { margin-top: 4rem; padding: 2rem 2.25rem; } }
  h1 { font-size: 1.5rem; line-height: 1.25; margin: 0 0 .5rem; }
  p { margin: .5rem 0 0; }
  .lead { color: var(--muted); }
  label { display: block; margin: 1.25rem 0 .35rem; font-weight: 600; }
  input[type=password], input[type=text] {
    display: block; width: 100%; min-height: 3rem; padding: .7rem .8rem; font: inherit;
    font-size: max(1rem, 16px); color: inherit; background: var(--card);
    border: 1px solid var(--line); border-radius: 8px; }
  input[aria-invalid=true] { border-color: var(--err-line);
                             box-shadow: 0 0 0 1px var(--err-line); }
  :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  .hint { margin-top: .35rem; font-size: .9375rem; color: var(--muted); }
  .check { display: flex; align-items: center; gap: .75rem; min-height: 3rem; margin: .75rem 0 0;
           font-weight: 400; cursor: pointer; }
  .check input { width: 1.4rem; height: 1.4rem; margin: 0; accent-color: var(--accent); }
  button { display: block; width: 100%; min-height: 3.25rem; margin-top: 1rem; padding: .75rem;
           font: inherit; font-weight: 600; border: 0; border-radius: 8px; cursor: pointer;
           background: var(--accent); color: var(--accent-text); }
  button:disabled { opacity: .6; cursor: progress; }
  .msg { margin-top: 1.25rem; padding: .85rem 1rem; border-radius: 8px; border-left: 5px solid; }
  .msg strong { display: block; margin-bottom: .2rem; }
  .ok { background: var(--ok-bg); color: var(--ok-text); border-color: var(--ok-line); }
  .error { background: var(--err-bg); color: var(--err-text); border-color: var(--err-line); }
  .badge { display: flex; align-items: center; justify-content: center; width: 3.5rem;
           height: 3.5rem; margin-bottom: 1rem; border-radius: 50%; font-size: 1.9rem;
           font-weight: 700; }
  .badge.ok { border: 0; background: var(--ok-line); color: #fff; }
  .badge.error { border: 0; background: var(--err-line); color: #fff; }
)PAGE";

// The head both pages share; the token is in their URL, so no referrer and no indexing.
// style: a <link> to the stylesheet, or the stylesheet inline.
std::string head(const std::string &title, const std::string &style) {
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"referrer\" content=\"no-referrer\">\n"
         "<meta name=\"robots\" content=\"noindex\">\n"
         "<title>" +
         title + "</title>\n" + style + "\n</head>\n";
}

// The reset page's script: what the page does in the browser. The page says which API it
// posts to in the form's data-api attribute.
const char *kResetScript = R"PAGE('use strict';
const $ = (id) => document.getElementById(id);
const form = $('reset'), box = $('message'), button = $('submit');
const pw = $('password'), again = $('confirm');
const viaV1 = form.dataset.api === 'v1';
const token = new URLSearchParams(location.search).get('token') || '';

// kind: 'ok' or 'error'; final: the form is of no more use (done, or the link is dead).
function show(kind, title, text, final) {
  box.replaceChildren();
  const strong = document.createElement('strong');
  strong.textContent = title;
  box.append(strong, text);
  box.className = 'msg ' + kind;
  box.hidden = false;
  if (final) {
    form.hidden = true;
    $('lead').hidden = true;
    $('title').textContent = kind === 'ok' ? 'Password changed' : 'This link cannot be used';
  }
}
function clear() {
  box.hidden = true;
  pw.removeAttribute('aria-invalid');
  again.removeAttribute('aria-invalid');
}
function invalid(field, title, text) {
  show('error', title, text, false);
  field.setAttribute('aria-invalid', 'true');
  field.focus();
  field.select();
}

const NEW_LINK = ' Ask for a new password reset mail where you sign in, and use the link in it.';
const USED = ['Link already used', 'This reset link has already been used, or it is not a ' +
              'valid link. Each link works only once.' + NEW_LINK];
const EXPIRED = ['Link expired', 'This reset link has expired: links are valid for a ' +
                 'limited time only.' + NEW_LINK];
const USED_OR_EXPIRED = ['Link expired or already used', 'This reset link has expired or ' +
                         'has already been used. Each link works only once and for a ' +
                         'limited time.' + NEW_LINK];
const NO_TOKEN = ['Incomplete link', 'This address has no reset token. Open the link from ' +
                  'the mail again, or copy the whole address from it.'];

// The APIs' answers (v1: {"error"}, flask: {"message"}) mapped to what the user should do.
// v1 says "invalid or expired token" for both a used and an expired link; flask tells them
// apart ("Invalid reset token." for a used or unknown one, "Reset token expired.").
function explain(status, text) {
  const short = /at least (\d+) characters/i.exec(text);
  if (short) return {field: pw, title: 'Password too short',
                     text: 'Use at least ' + short[1] + ' characters, the same in both fields.'};
  const long = /at most (\d+) bytes/i.exec(text);
  if (long) return {field: pw, title: 'Password too long',
                    text: 'Use at most ' + long[1] + ' bytes (about as many letters).'};
  if (text === 'password not confirm')
    return {field: again, title: 'Passwords do not match',
            text: 'Type the same new password in both fields.'};
  if (text === 'invalid or expired token') return {final: USED_OR_EXPIRED};
  if (text === 'Reset token expired.') return {final: EXPIRED};
  if (text === 'Invalid reset token.') return {final: USED};
  if (text === 'token not provided') return {final: NO_TOKEN};
  if (status === 429) return {title: 'Too many attempts',
                              text: 'Wait a minute, then try again.'};
  if (status >= 500) return {title: 'Server busy', text: 'Try again in a moment.'};
  return {title: 'Password not changed', text: text || 'Something went wrong. Try again.'};
}

if (!token) show('error', NO_TOKEN[0], NO_TOKEN[1], true);
pw.addEventListener('input', clear);
again.addEventListener('input', clear);
$('show').addEventListener('change', (e) => {
  pw.type = again.type = e.target.checked ? 'text' : 'password';
});
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  clear();
  if (!pw.value) return invalid(pw, 'Password missing', 'Type your new password.');
  if (pw.value !== again.value)
    return invalid(again, 'Passwords do not match',
                   'The two fields are different. Type the same new password in both.');
  button.disabled = true;
  button.textContent = 'Setting password\u2026';
  try {
    const res = viaV1
      ? await fetch('/api/v1/password-reset-confirm?token=' + encodeURIComponent(token), {
          method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({new_password: pw.value, new_password_confirm: again.value})})
      : await fetch('/auth/reset-password', {
          method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({reset_token: token, new_password: pw.value})});
    const body = await res.json().catch(() => ({}));
    if (res.ok) {
      show('ok', 'Your password has been changed.',
           'Go back to the app and sign in with your new password. For your safety, every ' +
           'device that was signed in to this account has been signed out.', true);
      return;
    }
    const why = explain(res.status, String(body.error || body.message || body.msg || ''));
    if (why.final) show('error', why.final[0], why.final[1], true);
    else if (why.field) invalid(why.field, why.title, why.text);
    else show('error', why.title, why.text, false);
  } catch (err) {
    show('error', 'No connection', 'The server could not be reached. Check your connection ' +
         'and try again.', false);
  } finally {
    button.disabled = false;
    button.textContent = 'Set new password';
  }
});
)PAGE";

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
  // Script and style are files of their own, so the page's CSP allows nothing inline.
  std::string html =
      head("Choose a new password", "<link rel=\"stylesheet\" href=\"/reset-password.css\">");
  html += R"PAGE(<body><main>
<h1 id="title">Choose a new password</h1>
<p id="lead" class="lead">Type your new password twice. You will sign in with it from now on.</p>
<form id="reset" data-api=")PAGE";
  html += via_v1 ? "v1" : "flask";
  html += R"PAGE(" novalidate>
  <label for="password">New password</label>
  <input id="password" name="password" type="password" autocomplete="new-password"
         autocapitalize="off" spellcheck="false" required aria-describedby="password-hint">
  <p id="password-hint" class="hint">Use one you do not use anywhere else.</p>
  <label for="confirm">Repeat the new password</label>
  <input id="confirm" name="confirm" type="password" autocomplete="new-password"
         autocapitalize="off" spellcheck="false" required>
  <label class="check"><input id="show" type="checkbox"> Show passwords</label>
  <button id="submit" type="submit">Set new password</button>
</form>
<div id="message" class="msg" role="alert" hidden></div>
</main>
<script src="/reset-password.js"></script>
</body></html>
)PAGE";
  return html;
}

std::string reset_password_script() {
  return kResetScript;
}

std::string reset_password_stylesheet() {
  return std::string(kStyle).substr(1);
}

std::string verify_email_page(bool ok, const std::string &message) {
  std::string html = head("Email confirmation", std::string("<style>") + kStyle + "</style>");
  // Served by v1's handler without a CSP header of its own: the same policy, by meta tag
  // (no script at all here).
  html.insert(html.find("<meta name=\"viewport\""),
              "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
              "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n");
  html += "<body><main>\n<div class=\"badge ";
  html += ok ? "ok\" aria-hidden=\"true\">&#10003;" : "error\" aria-hidden=\"true\">&#10007;";
  html += "</div>\n<h1>";
  html += ok ? "Email address confirmed" : "Link not valid";
  html += "</h1>\n<p class=\"msg ";
  html += ok ? "ok" : "error";
  html += "\" role=\"status\">" + escape_html(message) + "</p>\n</main></body></html>\n";
  return html;
}

} // namespace latch::pages
