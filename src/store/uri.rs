//! Secrets in MongoDB URIs, found without the driver: what every message
//! that shows a URI (or a `--db` that looks like one) leaves out.

/// URI options whose values are secrets.
const SECRET_OPTIONS: &[&str] = &["tlsCertificateKeyFilePassword", "authMechanismProperties"];

/// Whether the value of URI option `k` is kept out of messages: the secret
/// options, and any option whose name suggests a secret (a misspelled
/// `tlsCertificateKeyFilePasword=…` is refused by the driver, and its value
/// must not be echoed in that error either).
pub(crate) fn is_secret_option(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    SECRET_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(&k))
        || ["pass", "pwd", "secret", "token", "cred", "auth", "key"]
            .iter()
            .any(|w| k.contains(w))
}

/// The `user:password@` part of a URI, if any: (start, end) of the password.
pub(crate) fn password_span(uri: &str) -> Option<(usize, usize)> {
    let start = uri.find("://")? + 3;
    let end = uri[start..].find('?').map_or(uri.len(), |q| start + q);
    let at = start + uri[start..end].rfind('@')?;
    let colon = start + uri[start..at].find(':')?;
    Some((colon + 1, at))
}

/// The URI with its password and secret options replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let mut out = match password_span(uri) {
        Some((a, b)) => format!("{}***{}", &uri[..a], &uri[b..]),
        None => uri.to_string(),
    };
    if let Some(q) = out.find('?') {
        let query = out[q + 1..]
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if is_secret_option(k) => {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{}?{query}", &out[..q]);
    }
    out
}
