//! Errors as the App's clients see them: an HTTP status and `{"error": {"kind", "message"}}`.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use simile::{DatasetError, Error, IndexError, RunsError};

/// An error response: status, a stable snake_case kind, and a sentence for a person.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable snake_case kind the page can match (e.g. `unknown_sample`).
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with this status, kind and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn not_found(kind: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind, message)
    }
}

/// A query string that does not parse (`offset=1e308`, `bins=-1`): the API's JSON error, not
/// axum's plain-text rejection.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(e.status(), "payload_too_large", e.body_text());
        }
        ApiError::bad_request(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"kind": self.kind, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The error's message with its causes (`a: b: c`), each said once.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let message = chain(&e);
        let (status, kind) = match &e {
            Error::Dataset(d) => match d {
                DatasetError::NotFound(_) => (S::NOT_FOUND, "unknown_dataset"),
                DatasetError::UnknownSample(..) => (S::NOT_FOUND, "unknown_sample"),
                DatasetError::UnknownField { .. } => (S::BAD_REQUEST, "unknown_field"),
                DatasetError::InvalidStage(_) | DatasetError::InvalidField(_) => {
                    (S::BAD_REQUEST, "bad_view")
                }
                DatasetError::InvalidId(_)
                | DatasetError::FieldKind { .. }
                | DatasetError::NotADistanceField { .. } => (S::BAD_REQUEST, "bad_request"),
                _ => (S::INTERNAL_SERVER_ERROR, "internal"),
            },
            Error::Runs(RunsError::UnknownKey(_)) => (S::NOT_FOUND, "unknown_run"),
            Error::Runs(_) => (S::BAD_REQUEST, "bad_run"),
            Error::Index(i) => match i {
                IndexError::Unavailable { .. } | IndexError::Unauthenticated { .. } => {
                    (S::SERVICE_UNAVAILABLE, "backend_unavailable")
                }
                IndexError::Io { .. } | IndexError::Corrupt { .. } | IndexError::Backend { .. } => {
                    (S::INTERNAL_SERVER_ERROR, "backend_error")
                }
                _ => (S::BAD_REQUEST, "bad_query"),
            },
            Error::QueryIdsNotFound { .. } => (S::NOT_FOUND, "query_ids_not_found"),
            Error::PromptsNotSupported { .. } => (S::BAD_REQUEST, "prompts_not_supported"),
            Error::NoSimilarityRun { .. } => (S::BAD_REQUEST, "no_similarity_run"),
            Error::BadRun { .. } => (S::BAD_REQUEST, "bad_run"),
            Error::UnknownSampleIds { .. } | Error::UnknownLabelIds { .. } => {
                (S::NOT_FOUND, "unknown_sample")
            }
            Error::UnknownParams { .. }
            | Error::InvalidOption { .. }
            | Error::UnknownBackend { .. }
            | Error::EmbeddingsCount { .. }
            | Error::EmptyCollection(_) => (S::BAD_REQUEST, "bad_request"),
            Error::PatchesFieldMismatch { .. }
            | Error::LabelIdsRequired { .. }
            | Error::LabelIdsNotSupported
            | Error::EmptyQuery
            | Error::NotSupported(_) => (S::BAD_REQUEST, "bad_query"),
            Error::Model { .. } | Error::NoModel { .. } => (S::BAD_REQUEST, "model_error"),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!(kind, "{message}");
        }
        ApiError::new(status, kind, message)
    }
}

impl From<DatasetError> for ApiError {
    fn from(e: DatasetError) -> Self {
        Error::Dataset(e).into()
    }
}
