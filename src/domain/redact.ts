// Credentials never leave the process in a URL. A feed URL may carry `user:password@` or an API
// key in its query; wherever a URL is printed, logged or served it goes through `redactUrl`, and
// any free text that may quote one (an error message from ws or fetch) through `redactText`.

const SECRET_PARAMETER =
  /(?:^|[-_.])(?:key|apikey|token|secret|password|passwd|pwd|pass|passphrase|signature|sig|auth|authorization|credential|credentials|session|jwt|bearer)$|^(?:access|api|auth|client|private|secret|session)[-_.]?(?:key|token|secret|id)$/i;
const REDACTED = 'REDACTED';

/** True for query parameter names that commonly carry credentials (apiKey, access_token, X-Signature...). */
export function isSecretParameter(name: string): boolean {
  return SECRET_PARAMETER.test(name);
}

/**
 * The URL with its userinfo and every secret-looking query parameter's value replaced by
 * REDACTED. Text that does not parse as a URL is returned through `redactText`.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return redactText(url);
  }
  let changed = false;
  if (parsed.username !== '' || parsed.password !== '') {
    parsed.username = REDACTED;
    parsed.password = '';
    changed = true;
  }
  for (const name of [...parsed.searchParams.keys()]) {
    if (isSecretParameter(name)) {
      parsed.searchParams.set(name, REDACTED);
      changed = true;
    }
  }
  return changed ? parsed.toString() : url;
}

// scheme://userinfo@ and name=value pairs inside any text (an error message quoting a URL).
const USERINFO_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@]+)@/gi;
const PARAMETER_IN_TEXT = /([?&;])([^=&\s#]+)=([^&\s#"']*)/g;

/** `text` with URL userinfo and secret-looking `name=value` query pairs redacted. */
export function redactText(text: string): string {
  return text
    .replace(USERINFO_IN_TEXT, `$1${REDACTED}@`)
    .replace(PARAMETER_IN_TEXT, (whole, separator: string, name: string) => (isSecretParameter(name) ? `${separator}${name}=${REDACTED}` : whole));
}

/**
 * An error as pino's `err` key shows it ({type, message, stack}), with anything URL-like in the
 * message and stack redacted. Logging the Error itself would print a feed URL's credentials.
 */
export function redactedError(error: unknown): { type: string; message: string; stack?: string } {
  if (error instanceof Error) {
    return { type: error.name, message: redactText(error.message), ...(error.stack ? { stack: redactText(error.stack) } : {}) };
  }
  return { type: 'Error', message: redactText(typeof error === 'string' ? error : String(error)) };
}
