/** Which URLs the hub token and model files may travel to: https, or plain http only on this machine. */

/** Whether plain http may be used with this host: only loopback, where no one on the network can read it. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Why a URL may not be fetched (with a token, or for model files), or undefined when it may: https, or http on loopback. */
export function insecureUrlReason(url: URL): string | undefined {
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return isLoopback(url.hostname) ? undefined : `${url.origin} is plain http, which anyone on the network can read and change`;
  return `${url.protocol} URLs are not supported (only https)`;
}

/**
 * Text as it may be shown (notifications, the log): the credentials of every URL in it (`scheme://user:password@`)
 * replaced by `***`. A URL's authority is taken to end at `/`, `\`, `?`, `#` or white space.
 */
export function redactCredentials(text: string): string {
  let shown = '';
  let done = 0;
  for (let scheme = text.indexOf('://'); scheme >= 0; ) {
    const start = scheme + 3;
    let end = start;
    let at = -1;
    for (; end < text.length && !/[/\\?#\s]/.test(text[end]); end++) if (text[end] === '@') at = end;
    if (at >= 0) {
      shown += `${text.slice(done, start)}***`;
      done = at;
    }
    scheme = text.indexOf('://', start);
  }
  return shown + text.slice(done);
}

/** A URL (the hub endpoint, or one made from it) as it may be shown: its user name and password, if any, replaced by `***`. */
export function redactUrl(url: string | URL): string {
  const text = String(url);
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return redactCredentials(text);
  }
  if (parsed.username === '' && parsed.password === '') return redactCredentials(text);
  parsed.username = '***';
  parsed.password = '';
  return parsed.href;
}

/**
 * The user name and password in a URL, as written and decoded (for hiding them in text that may quote them in
 * other forms, such as an error from a transport).
 */
export function urlCredentials(url: string): string[] {
  try {
    const { username, password } = new URL(url);
    const decode = (part: string): string => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    };
    return [...new Set([username, password, decode(username), decode(password)])].filter((part) => part !== '');
  } catch {
    return [];
  }
}
