//! What a `mongodb://` URI names, and the secrets it carries: the
//! deployment and database to connect to, and a [`Redactor`] that keeps the
//! password (and the other secrets of the URI) out of every message.

use std::time::Duration;

use mongodb::options::ClientOptions;

use crate::error::{Error, Result};
use crate::store::uri::{is_secret_option, password_span, redact_uri};
use crate::store::DEFAULT_DB_NAME;

use super::deadline::DEFAULT_OPERATION_TIMEOUT;

/// Server selection timeout when the URI sets no `serverSelectionTimeoutMS`
/// (MongoDB's default): long enough for a replica set to elect a new
/// primary (MongoDB documents elections taking up to about 12 s), so that
/// a load running through a fail-over waits for the new primary instead of
/// failing. An unreachable server is reported after this long; a URI that
/// sets the option is followed.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The URI options that set the time limit of every operation (see
/// [`super::deadline`]), lower case: the driver knows neither (it refuses
/// `socketTimeoutMS`), so they are taken out of the URI before it reads it.
const TIMEOUT_OPTIONS: [&str; 2] = ["timeoutms", "sockettimeoutms"];

/// The URI option (lower case) of `manage`'s own that asks for a new
/// dataset's staging collection to be created sharded on hashed `_id`
/// (`shardStaging=hashed`), on a sharded cluster; taken out of the URI
/// before the driver reads it.
const SHARD_STAGING_OPTION: &str = "shardstaging";

/// The URI without `manage`'s own options: the time limit of an operation
/// that `timeoutMS` and `socketTimeoutMS` set (`timeoutMS` if given, else
/// `socketTimeoutMS`, else [`DEFAULT_OPERATION_TIMEOUT`]; `0` is no limit),
/// and whether `shardStaging=hashed` is set.
fn take_timeouts(uri: &str, redactor: &Redactor) -> Result<(String, Option<Duration>, bool)> {
    let Some((base, query)) = uri.split_once('?') else {
        return Ok((uri.to_string(), Some(DEFAULT_OPERATION_TIMEOUT), false));
    };
    let (mut timeout, mut socket) = (None, None);
    let mut shard_staging = false;
    let mut kept = Vec::new();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let key = k.to_ascii_lowercase();
        if key == SHARD_STAGING_OPTION {
            shard_staging = match v.to_ascii_lowercase().as_str() {
                "hashed" => true,
                "none" => false,
                _ => {
                    return Err(Error::Usage(format!(
                        "--db {}: {k}={v:?}: the one shard key manage creates is hashed _id (shardStaging=hashed), or none",
                        redactor.message(&redact_uri(uri))
                    )))
                }
            };
            continue;
        }
        if !TIMEOUT_OPTIONS.contains(&key.as_str()) {
            kept.push(kv);
            continue;
        }
        let ms: u64 = v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "--db {}: {k}={v:?} is not a time in milliseconds (0: no limit)",
                redactor.message(&redact_uri(uri))
            ))
        })?;
        let limit = (ms > 0).then(|| Duration::from_millis(ms));
        if key == TIMEOUT_OPTIONS[0] {
            timeout = Some(limit);
        } else {
            socket = Some(limit);
        }
    }
    let limit = timeout
        .or(socket)
        .unwrap_or(Some(DEFAULT_OPERATION_TIMEOUT));
    let uri = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((uri, limit, shard_staging))
}

/// What a `mongodb://` URI resolves to, without touching the network
/// (except the DNS lookups a `mongodb+srv://` URI asks for).
pub struct Target {
    pub options: ClientOptions,
    /// The database: the URI's, else `fluxvis`.
    pub db_name: String,
    /// `host:port,…`, for messages.
    pub hosts: String,
    pub redactor: Redactor,
    /// Whether the URI sets `authSource` (the driver fills it in otherwise).
    pub auth_source_given: bool,
    /// The time limit of an operation (see [`take_timeouts`]); `None`:
    /// none.
    pub operation_timeout: Option<Duration>,
    /// `shardStaging=hashed`: a new dataset's staging collection is
    /// created sharded on hashed `_id` (a sharded cluster only).
    pub shard_staging: bool,
}

impl Target {
    pub fn parse(uri: &str) -> Result<Self> {
        let redactor = Redactor::for_uri(uri);
        let (uri, operation_timeout, shard_staging) = take_timeouts(uri, &redactor)?;
        let uri = uri.as_str();
        let mut options = ClientOptions::parse(uri).run().map_err(|e| {
            Error::Usage(format!(
                "--db {}: not a valid MongoDB URI: {}",
                redact_uri(uri),
                redactor.message(&e.kind.to_string())
            ))
        })?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
        }
        if options.app_name.is_none() {
            options.app_name = Some("fluxpy-manage".into());
        }
        let db_name = database_name(options.default_database.as_deref());
        let hosts = options
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let hosts = if hosts.is_empty() {
            // mongodb+srv:// resolves hosts only when connecting.
            host_part(uri).to_string()
        } else {
            hosts
        };
        let auth_source_given = uri.split_once('?').is_some_and(|(_, q)| {
            q.split('&')
                .any(|kv| kv.to_ascii_lowercase().starts_with("authsource="))
        });
        Ok(Self {
            options,
            db_name,
            hosts: redactor.message(&hosts),
            redactor,
            auth_source_given,
            operation_timeout,
            shard_staging,
        })
    }

    pub(super) fn where_(&self) -> String {
        format!("MongoDB at {}", self.hosts)
    }
}

/// The database a URI names, or `fluxvis`.
pub fn database_name(from_uri: Option<&str>) -> String {
    match from_uri {
        Some(d) if !d.is_empty() => d.to_string(),
        _ => DEFAULT_DB_NAME.to_string(),
    }
}

/// The hosts of a URI as written (after any `user:pass@`, before `/` or `?`).
fn host_part(uri: &str) -> &str {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[start..].find('?').map_or(uri.len(), |q| start + q);
    let from = uri[start..end].rfind('@').map_or(start, |a| start + a + 1);
    let to = uri[from..end].find('/').map_or(end, |s| from + s);
    &uri[from..to]
}

/// The same URI naming database `db` (what the test suite uses to work in a
/// fresh database of the deployment `FLUXPY_TEST_MONGODB_URI` names).
pub fn with_database(uri: &str, db: &str) -> String {
    let start = uri.find("://").map_or(0, |i| i + 3);
    let query = uri[start..].find('?').map_or(uri.len(), |q| start + q);
    let hosts_from = uri[start..query]
        .rfind('@')
        .map_or(start, |a| start + a + 1);
    let path = uri[hosts_from..query]
        .find('/')
        .map_or(query, |s| hosts_from + s);
    format!("{}/{db}{}", &uri[..path], &uri[query..])
}

/// Removes a URI's secrets from any text, as written and percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn for_uri(uri: &str) -> Self {
        let mut secrets = Vec::new();
        if let Some((a, b)) = password_span(uri) {
            secrets.push(uri[a..b].to_string());
        }
        if let Some(q) = uri.find('?') {
            for kv in uri[q + 1..].split('&') {
                if let Some((k, v)) = kv.split_once('=') {
                    if is_secret_option(k) {
                        secrets.push(v.to_string());
                    }
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so that a secret containing another is scrubbed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// `text` on one line, without any secret.
    pub fn message(&self, text: &str) -> String {
        let mut t = text.replace(['\n', '\r'], " ");
        for s in &self.secrets {
            t = t.replace(s.as_str(), "***");
        }
        t
    }
}

/// `s` with its `%XX` escapes decoded (an incomplete or non-hex escape is
/// kept as written; bytes that are not UTF-8 become U+FFFD).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_defaults_to_fluxvis() {
        assert_eq!(database_name(None), "fluxvis");
        assert_eq!(database_name(Some("")), "fluxvis");
        assert_eq!(database_name(Some("carbon")), "carbon");
        assert_eq!(Target::parse("mongodb://h").unwrap().db_name, "fluxvis");
        assert_eq!(Target::parse("mongodb://h/").unwrap().db_name, "fluxvis");
        assert_eq!(
            Target::parse("mongodb://u:p@h:27018/carbon?authSource=admin")
                .unwrap()
                .db_name,
            "carbon"
        );
    }

    #[test]
    fn uri_parsing() {
        let t = Target::parse("mongodb://u:s3cret@db1:27018,db2/carbon?replicaSet=rs0").unwrap();
        assert_eq!(t.hosts, "db1:27018,db2:27017");
        assert_eq!(t.options.repl_set_name.as_deref(), Some("rs0"));
        let cred = t.options.credential.as_ref().unwrap();
        assert_eq!(cred.username.as_deref(), Some("u"));
        assert_eq!(cred.password.as_deref(), Some("s3cret"));
        assert_eq!(
            t.options.server_selection_timeout,
            Some(DEFAULT_SERVER_SELECTION_TIMEOUT)
        );
        let t = Target::parse("mongodb://h/?serverSelectionTimeoutMS=250").unwrap();
        assert_eq!(
            t.options.server_selection_timeout,
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            host_part("mongodb+srv://u:p@cluster0.example.net/db"),
            "cluster0.example.net"
        );
    }

    #[test]
    fn server_selection_waits_out_an_election_unless_the_uri_says_otherwise() {
        let t = |uri: &str| Target::parse(uri).unwrap().options.server_selection_timeout;
        // Unset: 30 s, longer than an election (up to ~12 s).
        for uri in [
            "mongodb://h/db",
            "mongodb://a:27017,b:27017/db?replicaSet=rs0",
            "mongodb://h/db?timeoutMS=600000",
        ] {
            assert_eq!(t(uri), Some(Duration::from_secs(30)), "{uri}");
        }
        // Set: as written, whatever its case, with other options beside.
        assert_eq!(
            t("mongodb://h/db?serverSelectionTimeoutMS=400"),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            t("mongodb://a,b/db?replicaSet=rs0&serverselectiontimeoutms=45000&timeoutMS=90000"),
            Some(Duration::from_secs(45))
        );
    }

    #[test]
    fn operation_timeouts_come_from_the_uri() {
        let t = |uri: &str| Target::parse(uri).unwrap().operation_timeout;
        assert_eq!(t("mongodb://h/db"), Some(DEFAULT_OPERATION_TIMEOUT));
        assert_eq!(
            t("mongodb://h/db?socketTimeoutMS=1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            t("mongodb://h/db?sockettimeoutms=10&appName=x&timeoutMS=20"),
            Some(Duration::from_millis(20))
        );
        assert_eq!(t("mongodb://h/db?timeoutMS=0"), None);
        let app = Target::parse("mongodb://h/db?socketTimeoutMS=5&appName=x").unwrap();
        assert_eq!(app.options.app_name.as_deref(), Some("x"));
        let e = Target::parse("mongodb://u:hunter2@h/db?socketTimeoutMS=soon")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("socketTimeoutMS") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_uri_is_refused_without_its_password() {
        let e = Target::parse("mongodb://u:hunter2@h/db?maxPoolSize=many")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains("maxPoolSize"), "{e}");
        let e = Target::parse("mongodb://u:hunter2@/db")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("u:***@"), "{e}");
    }

    #[test]
    fn another_database_of_the_same_deployment() {
        assert_eq!(with_database("mongodb://h", "t1"), "mongodb://h/t1");
        assert_eq!(with_database("mongodb://h:1/", "t1"), "mongodb://h:1/t1");
        assert_eq!(
            with_database("mongodb://u:p/x@h1,h2/old?replicaSet=rs", "t1"),
            "mongodb://u:p/x@h1,h2/t1?replicaSet=rs"
        );
        assert_eq!(with_database("mongodb://h?w=1", "t1"), "mongodb://h/t1?w=1");
        let t = Target::parse(&with_database("mongodb://h/old?w=1", "t1")).unwrap();
        assert_eq!(t.db_name, "t1");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_uri("mongodb://alice:p%40ss:w@h1,h2/db?tls=true"),
            "mongodb://alice:***@h1,h2/db?tls=true"
        );
        assert_eq!(redact_uri("mongodb://h/db"), "mongodb://h/db");
        assert_eq!(redact_uri("mongodb://alice@h/db"), "mongodb://alice@h/db");
        assert_eq!(
            redact_uri("mongodb+srv://a:b@c/?tlsCertificateKeyFilePassword=kp&appName=x"),
            "mongodb+srv://a:***@c/?tlsCertificateKeyFilePassword=***&appName=x"
        );
        let r = Redactor::for_uri("mongodb://alice:p%40ss@h/db");
        let m = r.message("auth failed for p@ss and p%40ss\nsecond line");
        assert_eq!(m, "auth failed for *** and *** second line");
        assert_eq!(Redactor::for_uri("mongodb://h/").message("a\nb"), "a b");
    }

    #[test]
    fn describe_and_errors_never_show_the_password() {
        let t = Target::parse("mongodb://alice:topsecret@topsecret-host:1/db").unwrap();
        // The host happens to contain the password: scrubbing wins.
        assert!(!t.hosts.contains("topsecret"), "{}", t.hosts);
        let t = Target::parse("mongodb://alice:pw123@localhost:1/db").unwrap();
        assert_eq!(t.where_(), "MongoDB at localhost:1");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%3A"), "p@ss:");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn percent_decoding_of_partial_escapes_and_other_bytes() {
        assert_eq!(percent_decode("%%41"), "%A");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%C3%A9%2f"), "\u{e9}/");
        assert_eq!(percent_decode("x%ffy"), "x\u{fffd}y");
    }
}
