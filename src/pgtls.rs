//! PostgreSQL over TLS, for the store and the `postgres` usage source: both connect through
//! sqlx with rustls, reading `sslmode` (`disable`, `prefer` (the default), `require`,
//! `verify-ca`, `verify-full`) and `sslrootcert` from the URL as libpq does. One difference
//! from libpq: sqlx 0.8 with rustls 0.23.24+ checks the host name in `verify-ca` too (its
//! name-mismatch exemption predates rustls' `NotValidForNameContext`; fixed in sqlx 0.9), so
//! `verify-ca` is as strict as `verify-full`. This module checks a URL's TLS settings, picks
//! the TLS crypto provider, and turns a failed TLS connection into what the user should do
//! next; it never prints a URL.

/// Makes ring the process's TLS crypto provider, once. Both ring and aws-lc-rs are compiled
/// in (the AWS SDK uses the second), so rustls cannot pick one by itself, and a certificate
/// check that asks for the process's provider (sqlx's `verify-ca`) would panic without it.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What to do about a connection error whose text is `message`, when it is about TLS.
pub fn hint(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if m.contains("notvalidforname") || m.contains("not valid for name") {
        return Some(
            "the server's certificate does not name the host connected to: connect by a host name the certificate lists (the RDS endpoint's DNS name, not an IP address or an alias); costsplit's PostgreSQL driver checks the name in sslmode=verify-ca as well as in verify-full",
        );
    }
    if m.contains("invalid peer certificate")
        || m.contains("unknownissuer")
        || m.contains("unknown issuer")
        || m.contains("badsignature")
        || m.contains("invalid certificate")
    {
        return Some(
            "the server's certificate is not signed by a CA in sslrootcert (sslmode=verify-ca or verify-full): point sslrootcert at the CA bundle that signed it (for RDS and Aurora, AWS's global-bundle.pem)",
        );
    }
    if m.contains("sslrootcert") || (m.contains("no such file") && m.contains("cert")) {
        return Some(
            "sslrootcert names a file that cannot be read: give the path of the CA bundle (PEM)",
        );
    }
    if m.contains("no encryption") || m.contains("hostssl") {
        return Some(
            "the server accepts only TLS connections: remove sslmode=disable (prefer, the default, and require use TLS)",
        );
    }
    if m.contains("does not support tls") || m.contains("tls upgrade required") {
        return Some(
            "the server does not offer TLS: turn on ssl in its postgresql.conf, or connect with sslmode=prefer",
        );
    }
    None
}

/// Checks a PostgreSQL URL's TLS settings before connecting: `sslmode` is one of libpq's
/// values and `sslrootcert` names a readable file.
pub fn check_url(url: &str) -> Result<(), TlsSettingError> {
    install_crypto_provider();
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key.eq_ignore_ascii_case("sslmode") {
            const MODES: [&str; 6] = [
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "verify-full",
            ];
            if !MODES.contains(&value.to_ascii_lowercase().as_str()) {
                return Err(TlsSettingError::SslMode(value.to_string()));
            }
        }
        if key.eq_ignore_ascii_case("sslrootcert") {
            if let Err(e) = std::fs::metadata(value) {
                return Err(TlsSettingError::RootCert {
                    path: value.to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A TLS setting of a PostgreSQL URL that cannot work, said as what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSettingError {
    #[error("sslmode={0} is not a PostgreSQL sslmode: use one of disable, allow, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("sslrootcert {path} cannot be read ({reason}): give the path of the CA bundle (PEM) that signed the server's certificate")]
    RootCert { path: String, reason: String },
}

/// `message` with the hint, when there is one, after it.
pub fn explain(message: &str) -> String {
    match hint(message) {
        Some(hint) => format!("{message}; {hint}"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_say_what_to_change() {
        let e =
            explain("error communicating with database: invalid peer certificate: UnknownIssuer");
        assert!(e.contains("sslrootcert"), "{e}");
        let e = explain("invalid peer certificate: NotValidForName");
        assert!(
            e.contains("connect by a host name the certificate lists"),
            "{e}"
        );
        assert_eq!(explain("connection refused"), "connection refused");
    }
}
