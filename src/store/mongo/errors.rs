//! Driver errors as one line each: which server, database and collection,
//! what failed, and for the failures a user can fix, what to try.

use mongodb::error::{ErrorKind, WriteFailure};

use super::deadline::{Stalled, DEFAULT_OPERATION_TIMEOUT};
use super::{Target, DEFAULT_SERVER_SELECTION_TIMEOUT};
use crate::error::Error;

/// MongoDB's duplicate key error.
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// What a failed operation was working on, for messages.
#[derive(Clone, Copy)]
pub(super) enum Subject<'a> {
    Collection(&'a str),
    Command(&'a str),
}

/// MongoDB's `AuthenticationFailed` error code.
const AUTHENTICATION_FAILED: i32 = 18;

fn is_auth_failure(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Authentication { .. } => true,
        ErrorKind::Command(c) => c.code == AUTHENTICATION_FAILED,
        _ => false,
    }
}

/// The one line for a failed authentication: the host, the user, the
/// database it was looked up in, and what to try.
fn auth_message(target: &Target, text: &str) -> String {
    let cred = target.options.credential.as_ref();
    let user = cred
        .and_then(|c| c.username.as_deref())
        .map(|u| format!(" for user '{}'", target.redactor.message(u)))
        .unwrap_or_default();
    let source = cred
        .and_then(|c| c.source.as_deref())
        .or(target.options.default_database.as_deref())
        .filter(|d| !d.is_empty())
        .unwrap_or("admin");
    let hint = if !target.auth_source_given && source != "admin" {
        format!(
            "the URI sets no authSource, so the user was looked up in database '{source}'; if it was created in 'admin' (the usual place), add authSource=admin to the URI (…/{source}?authSource=admin)"
        )
    } else {
        format!("check the user name and password, and that the user exists in database '{source}'")
    };
    let cause = text.trim_start_matches("Authentication error: ").trim();
    format!("authentication failed{user} (database '{source}'): {cause}; {hint}")
}

pub(super) fn map_err(target: &Target, subject: Subject, e: mongodb::error::Error) -> Error {
    let text = target.redactor.message(&e.kind.to_string());
    if is_auth_failure(&e) {
        return Error::store(target.where_(), auth_message(target, &text));
    }
    if let Some(stalled) = e.get_custom::<Stalled>() {
        let what = match subject {
            Subject::Collection(c) => format!("collection '{c}'"),
            Subject::Command(c) => format!("command {c}"),
        };
        let secs = stalled.limit.as_secs_f64();
        let text = if stalled.earlier {
            format!("not tried ({what}): an earlier operation got no answer within {secs} s")
        } else {
            format!(
                "no answer within {secs} s ({what}): the server or the network stalled; the time limit of an operation is timeoutMS or socketTimeoutMS in the URI ({} s unless set)",
                DEFAULT_OPERATION_TIMEOUT.as_secs()
            )
        };
        return Error::store(target.where_(), text);
    }
    match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. } => {
            let secs = target
                .options
                .server_selection_timeout
                .unwrap_or(DEFAULT_SERVER_SELECTION_TIMEOUT)
                .as_secs_f64();
            // The driver lists the topology; its first server error is the cause.
            let cause = text
                .split_once("Error: ")
                .map(|(_, c)| c.split(", labels").next().unwrap_or(c))
                .map(|c| {
                    c.trim_start_matches("Kind: ")
                        .trim_end_matches([' ', '}', ']'])
                })
                .unwrap_or(&text);
            Error::store(
                target.where_(),
                format!(
                    "no server answered within {secs} s ({cause}); check the host in --db or FLUXPY_DB and that MongoDB is running there"
                ),
            )
        }
        _ => {
            let what = match subject {
                Subject::Collection(c) => format!("collection '{c}'"),
                Subject::Command(c) => format!("command {c}"),
            };
            Error::store(
                format!(
                    "{} (database '{}', {what})",
                    target.where_(),
                    target.db_name
                ),
                text,
            )
        }
    }
}

/// MongoDB's `Unauthorized` error code: the user lacks the privilege.
const UNAUTHORIZED: i32 = 13;

/// Whether the server refused the operation for want of a privilege (a
/// user whose roles do not grant it), as opposed to any other failure.
pub(super) fn is_unauthorized(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => c.code == UNAUTHORIZED,
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == UNAUTHORIZED,
        _ => false,
    }
}

/// The server codes of a fail-over or of a server going away: the
/// operation may be run again once a primary is found (MongoDB's
/// retryable-writes specification lists them).
const RETRYABLE_CODES: [i32; 13] = [
    6,     // HostUnreachable
    7,     // HostNotFound
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    134,   // ReadConcernMajorityNotAvailableYet
    189,   // PrimarySteppedDown
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// Whether an operation failed because of a fail-over, a primary stepping
/// down or a connection lost (not for want of an answer within the time
/// limit, which is final): an idempotent operation may be run again.
pub(super) fn is_retryable(e: &mongodb::error::Error) -> bool {
    if e.get_custom::<Stalled>().is_some() {
        return false;
    }
    if e.contains_label(mongodb::error::RETRYABLE_WRITE_ERROR) {
        return true;
    }
    match e.kind.as_ref() {
        ErrorKind::Command(c) => RETRYABLE_CODES.contains(&c.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => RETRYABLE_CODES.contains(&w.code),
        ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => true,
        _ => false,
    }
}

/// MongoDB's `NamespaceNotFound`: the collection does not exist.
pub(super) fn is_namespace_missing(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 26)
}

/// MongoDB's `NamespaceExists`: the collection exists already.
pub(super) fn is_namespace_exists(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Command(c) if c.code == 48)
}

/// MongoDB's answer to an insert whose `_id` is taken.
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == DUPLICATE_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_suggest_auth_source_only_when_it_would_help() {
        let m = |uri: &str| auth_message(&Target::parse(uri).unwrap(), "SCRAM failure: x");
        let no_source = m("mongodb://alice:pw%40@h/carbon");
        assert!(
            no_source.starts_with("authentication failed for user 'alice'"),
            "{no_source}"
        );
        assert!(
            no_source.contains("authSource=admin") && no_source.contains("'carbon'"),
            "{no_source}"
        );
        assert!(
            !no_source.contains("pw@") && !no_source.contains("pw%40"),
            "{no_source}"
        );
        for uri in [
            "mongodb://alice:pw@h/carbon?authSource=admin",
            "mongodb://alice:pw@h/",
        ] {
            let given = m(uri);
            assert!(
                given.contains("authentication failed") && !given.contains("authSource="),
                "{given}"
            );
        }
    }
}
