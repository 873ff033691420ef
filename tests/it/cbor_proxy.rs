//! A translating proxy between the current `aws-sdk-cloudwatch` (Smithy RPC v2 CBOR) and moto,
//! which serves CloudWatch only as Query/XML and JSON 1.0 (getmoto/moto#9195). It turns
//! `POST /service/{Service}/operation/{Op}` with a CBOR body into moto's JSON 1.0 call
//! (`X-Amz-Target: {Service}.{Op}`) with the same signature headers (moto takes the region
//! from them), and moto's JSON answer, errors included, back into CBOR with the RPC v2 headers.
//! Timestamps are CBOR tag 1 on the SDK's side and epoch seconds in JSON 1.0.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use ciborium::Value as Cbor;
use serde_json::Value as Json;

/// Response members that hold timestamps (CBOR tag 1), and members that are doubles (which
/// JSON may write as integers, `3000`, while the SDK reads a CBOR float).
const TIMESTAMPS: [&str; 4] = [
    "Timestamps",
    "Timestamp",
    "StateUpdatedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
];
const DOUBLES: [&str; 7] = [
    "Values",
    "Value",
    "Sum",
    "Average",
    "Minimum",
    "Maximum",
    "SampleCount",
];

pub struct CborProxy {
    pub url: String,
}

impl CborProxy {
    pub async fn start(moto_url: &str) -> CborProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(translate)
            .with_state(moto_url.to_string());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CborProxy {
            url: format!("http://{addr}"),
        }
    }
}

async fn translate(
    State(moto): State<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let ["service", service, "operation", operation] = parts.as_slice() else {
        return plain(StatusCode::NOT_FOUND, "not an RPC v2 path");
    };
    let input: Cbor = if body.is_empty() {
        Cbor::Map(Vec::new())
    } else {
        match ciborium::from_reader(body.as_ref()) {
            Ok(value) => value,
            Err(e) => return plain(StatusCode::BAD_REQUEST, &format!("not CBOR: {e}")),
        }
    };
    let mut request = reqwest::Client::new()
        .post(format!("{moto}/"))
        .header("X-Amz-Target", format!("{service}.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(serde_json::to_vec(&to_json(input)).expect("JSON"));
    for name in ["authorization", "x-amz-date", "x-amz-security-token"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_bytes());
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return plain(StatusCode::BAD_GATEWAY, &format!("moto: {e}")),
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).expect("a status");
    let text = answer.bytes().await.unwrap_or_default();
    if std::env::var_os("TEST_LOG").is_some() {
        eprintln!(
            "cbor proxy: {service}.{operation} -> {status}: {}",
            String::from_utf8_lossy(&text)
        );
    }
    let json: Json = if text.is_empty() {
        Json::Object(Default::default())
    } else {
        match serde_json::from_slice(&text) {
            Ok(json) => json,
            Err(_) => return plain(StatusCode::BAD_GATEWAY, &String::from_utf8_lossy(&text)),
        }
    };
    let mut out = Vec::new();
    ciborium::into_writer(&to_cbor(json, None), &mut out).expect("CBOR");
    Response::builder()
        .status(status)
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("Content-Type", "application/cbor")
        .body(Body::from(out))
        .expect("a response")
}

fn plain(status: StatusCode, text: &str) -> Response {
    Response::builder()
        .status(status)
        .body(Body::from(text.to_string()))
        .expect("a response")
}

fn to_json(value: Cbor) -> Json {
    match value {
        Cbor::Integer(i) => Json::from(i128::from(i) as i64),
        Cbor::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Cbor::Text(t) => Json::String(t),
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Null => Json::Null,
        Cbor::Bytes(b) => Json::String(base64_encode(&b)),
        // Tag 1: epoch seconds, which JSON 1.0 writes as a number.
        Cbor::Tag(_, inner) => to_json(*inner),
        Cbor::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(entries) => Json::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}

/// `member` is the name of the member `value` is (or is an element of).
fn to_cbor(value: Json, member: Option<&str>) -> Cbor {
    let timestamp = member.is_some_and(|m| TIMESTAMPS.contains(&m));
    let double = member.is_some_and(|m| DOUBLES.contains(&m));
    match value {
        Json::Array(items) => Cbor::Array(items.into_iter().map(|v| to_cbor(v, member)).collect()),
        // A member moto writes as null is absent, as the SDK expects.
        Json::Object(map) => Cbor::Map(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let value = to_cbor(v, Some(&k));
                    (Cbor::Text(k), value)
                })
                .collect(),
        ),
        Json::Number(n) if timestamp => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or(0.0))))
        }
        Json::String(s) if timestamp => {
            let seconds = chrono::DateTime::parse_from_rfc3339(&s)
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or(0.0);
            Cbor::Tag(1, Box::new(Cbor::Float(seconds)))
        }
        Json::Number(n) if double => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Cbor::Text(s),
        Json::Bool(b) => Cbor::Bool(b),
        Json::Null => Cbor::Null,
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
