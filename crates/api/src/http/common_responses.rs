//! The error answers any operation can give because of the layers around every handler (version
//! check, authentication, rate limits, idempotency, body and header limits, the request deadline,
//! the database being unavailable), added to each operation of the OpenAPI document so that it
//! lists every status a client can actually receive. Each refers to a shared response in
//! `components.responses`; an operation's own, more specific description of a status wins.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Type};

struct Common {
    status: &'static str,
    name: &'static str,
    description: &'static str,
    retry_after: bool,
}

const fn common(status: &'static str, name: &'static str, description: &'static str, retry_after: bool) -> Common {
    Common {
        status,
        name,
        description,
        retry_after,
    }
}

const BAD_REQUEST: Common = common(
    "400",
    "BadRequest",
    "invalid_request_error: a parameter, the body, the Idempotency-Key or the Cardplane-Version header is invalid",
    false,
);
const UNAUTHORIZED: Common = common(
    "401",
    "Unauthorized",
    "authentication_error: missing, unknown, wrong or revoked credentials",
    false,
);
const FORBIDDEN: Common = common(
    "403",
    "Forbidden",
    "permission_error: the key lacks a permission, or a sandbox-only operation with a live key",
    false,
);
const NOT_FOUND: Common = common(
    "404",
    "NotFound",
    "not_found_error: no such object in this tenant and environment",
    false,
);
const TIMEOUT: Common = common(
    "408",
    "RequestTimeout",
    "invalid_request_error / request_timeout: the request took longer than the request deadline",
    false,
);
const IN_PROGRESS: Common = common(
    "409",
    "Conflict",
    "conflict_error, or idempotency_error / idempotency_request_in_progress",
    false,
);
const TOO_LARGE: Common = common(
    "413",
    "PayloadTooLarge",
    "invalid_request_error / body_too_large",
    false,
);
const MEDIA_TYPE: Common = common(
    "415",
    "UnsupportedMediaType",
    "invalid_request_error / unsupported_media_type: the body is not application/json",
    false,
);
const REUSED: Common = common(
    "422",
    "IdempotencyKeyReused",
    "idempotency_error / idempotency_key_reused: the key was used with a different request",
    false,
);
const RATE_LIMITED: Common = common(
    "429",
    "TooManyRequests",
    "rate_limit_error: rate_limited or too_many_failed_authentications; retry after Retry-After",
    true,
);
const HEADERS: Common = common(
    "431",
    "HeadersTooLarge",
    "invalid_request_error / headers_too_large: the request line and headers exceed the limit",
    false,
);
const INTERNAL: Common = common(
    "500",
    "InternalError",
    "api_error / internal_error: never carries internal detail; quote the Request-Id header",
    false,
);
const UNAVAILABLE: Common = common(
    "503",
    "ServiceUnavailable",
    "api_error / service_unavailable: the database is unreachable; retry after Retry-After",
    true,
);

const ALL: [Common; 13] = [
    BAD_REQUEST,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    TIMEOUT,
    IN_PROGRESS,
    TOO_LARGE,
    MEDIA_TYPE,
    REUSED,
    RATE_LIMITED,
    HEADERS,
    INTERNAL,
    UNAVAILABLE,
];

fn schemes(op: &Operation) -> Vec<String> {
    op.security
        .iter()
        .flatten()
        .filter_map(|s| serde_json::to_value(s).ok())
        .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .flatten()
        .collect()
}

/// The shared statuses that apply to one operation.
fn applicable(path: &str, method: &str, op: &Operation) -> Vec<&'static Common> {
    let schemes = schemes(op);
    let tenant = schemes.iter().any(|s| s == "basic_auth");
    let authenticated = !schemes.is_empty();
    let writes = matches!(method, "post" | "put");
    let has_path_params = op
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Path);
    let sandbox_only = path.starts_with("/sandbox/") || path.starts_with("/simulate/");
    let mut out = vec![&BAD_REQUEST, &TIMEOUT, &HEADERS, &INTERNAL];
    if authenticated {
        out.extend([&UNAUTHORIZED, &UNAVAILABLE]);
    }
    if tenant {
        out.push(&RATE_LIMITED);
    }
    if has_path_params {
        out.push(&NOT_FOUND);
    }
    if sandbox_only {
        out.push(&FORBIDDEN);
    }
    if writes {
        out.push(&TOO_LARGE);
    }
    if op.request_body.is_some() {
        out.push(&MEDIA_TYPE);
    }
    if writes && tenant {
        out.extend([&IN_PROGRESS, &REUSED]);
    }
    out
}

pub fn add(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    for c in &ALL {
        let mut response = ResponseBuilder::new().description(c.description).content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        );
        if c.retry_after {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("Seconds to wait before retrying"))
                    .build(),
            );
        }
        components
            .responses
            .insert(c.name.to_owned(), RefOr::T(response.build()));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("patch", &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op.as_mut() else { continue };
            for c in applicable(path, method, op) {
                op.responses
                    .responses
                    .entry(c.status.to_owned())
                    .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{}", c.name))));
            }
        }
    }
}
