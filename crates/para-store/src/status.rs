//! The statuses the store keeps as text: a credential's, a run's and a journal entry's.
//!
//! Each is an enum in Rust and its upper-case name in the database, in the Connect API and in
//! task history (`VALID`, `SUCCEEDED`, `DONE`…): [`as_str`](CredentialStatus::as_str) and
//! [`FromStr`] are the one pair of functions between the two, so what is stored and what
//! clients read cannot drift apart. Reading a text no variant names (a database written by a
//! newer para, a hand edit) is an error, [`UnknownStatus`], never a panic or a silent default.

use std::fmt;
use std::str::FromStr;

/// A text that names no status of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind} (one of {})", .known.join(", "))]
pub struct UnknownStatus {
    /// Which kind of status was read: `credential status`, `run status`, `step status`.
    pub kind: &'static str,
    pub value: String,
    /// The texts of the kind.
    pub known: &'static [&'static str],
}

/// Defines a status enum with its stored texts, `as_str`, `FromStr`, `Display` and
/// `Serialize` (as the text).
macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and sent to clients.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            /// Reads [`Self::as_str`]'s text (exactly: the texts are upper case).
            fn from_str(text: &str) -> Result<Self, UnknownStatus> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownStatus {
                        kind: $kind,
                        value: text.to_string(),
                        known: &[$($text),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // `pad`, not `write_str`: a width (`{:<9}`) lines up columns of statuses.
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

status_enum! {
    /// Where a credential stands.
    CredentialStatus, "credential status" {
        /// Connected and usable (its last check or refresh succeeded).
        Valid = "VALID",
        /// Refused by the provider (a failed check or refresh); `status_reason` says why.
        Invalid = "INVALID",
        /// Started but not finished connecting.
        Pending = "PENDING",
    }
}

status_enum! {
    /// Where a run stands.
    RunStatus, "run status" {
        /// Written, not started.
        Queued = "QUEUED",
        /// Leased to a worker (or was, when its lease expired).
        Running = "RUNNING",
        /// Waiting for `not_before`: a delay, a retry, a `Retry-After`.
        Waiting = "WAITING",
        Succeeded = "SUCCEEDED",
        Failed = "FAILED",
    }
}

status_enum! {
    /// Where a journal entry (one step of a run) stands.
    StepStatus, "step status" {
        /// Ran; `output` holds the result (also when a failure was handed on to the next step).
        Done = "DONE",
        /// Failed for good; `error` says why.
        Failed = "FAILED",
        /// Runs (again) at `not_before`: a delay, or a retry after `error`.
        Waiting = "WAITING",
    }
}

/// A status read from column `index` of a row.
pub(crate) fn read<T: FromStr<Err = UnknownStatus>>(
    r: &sqlx::any::AnyRow,
    index: usize,
) -> crate::Result<T> {
    use sqlx::Row;
    Ok(r.try_get::<String, _>(index)?.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: FromStr<Err = UnknownStatus> + Copy + PartialEq + fmt::Debug + fmt::Display,
        T: serde::Serialize,
    {
        for &status in all {
            let text = status.to_string();
            assert_eq!(text.parse::<T>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(text));
        }
    }

    #[test]
    fn every_status_reads_back_from_its_text_and_nothing_else_does() {
        round_trips(CredentialStatus::ALL);
        round_trips(RunStatus::ALL);
        round_trips(StepStatus::ALL);
        // The texts clients and stored rows have always used.
        assert_eq!(
            CredentialStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["VALID", "INVALID", "PENDING"]
        );
        assert_eq!(
            RunStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["QUEUED", "RUNNING", "WAITING", "SUCCEEDED", "FAILED"]
        );
        assert_eq!(
            StepStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            ["DONE", "FAILED", "WAITING"]
        );
        let wrong = "valid".parse::<CredentialStatus>().unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "`valid` is not a credential status (one of VALID, INVALID, PENDING)"
        );
        assert!("DONE".parse::<RunStatus>().is_err());
        assert_eq!(format!("{:<9}|", RunStatus::Failed), "FAILED   |", "columns line up");
        assert!("".parse::<StepStatus>().is_err());
    }
}
