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
