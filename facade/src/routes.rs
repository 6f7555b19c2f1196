//! The `/scim/v2` routes. Each handler extracts, calls the core, and maps
//! the result; every failure is a [`ScimError`].

use axum::{
    Router,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware,
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use provisioning_proto::pb;
use serde_json::{Map, Value};

use crate::{
    AppState, MAX_BODY_BYTES, discovery,
    error::{RETRY_AFTER_SECS, SCIM_JSON, ScimError, ScimType, scim_response},
    extract::{
        BaseUrl, Caller, IfMatch, QueryParams, ScimBody, parse_paging_number, payload_too_large,
        request_id, unsupported_media_type,
    },
    filter,
    patch::{Model, apply_patch},
    user::{
        Changes, Projection, USER_SCHEMA, create_request, etag, get_ci, list_response,
        replace_changes, to_resource,
    },
};

/// `count` when the client sends none.
const DEFAULT_COUNT: i64 = 100;
/// Times a version conflict is retried when the client sent no `If-Match`.
const CONFLICT_RETRIES: usize = 3;

/// All routes, with SCIM error bodies for everything axum itself rejects.
pub fn router(state: AppState) -> Router {
    let request_timeout = state.config.request_timeout;
    Router::new()
        .route("/scim/v2/Users", get(users_get).post(users_post))
        .route("/scim/v2/Users/.search", post(users_search))
        .route(
            "/scim/v2/Users/{id}",
            get(user_get)
                .put(user_put)
                .patch(user_patch)
                .delete(user_delete),
        )
        .route("/scim/v2/Groups", get(groups_get).post(groups_write))
        .route("/scim/v2/Groups/.search", post(groups_search))
        .route(
            "/scim/v2/Groups/{id}",
            get(group_id_get)
                .put(groups_write)
                .patch(groups_write)
                .delete(groups_write),
        )
        .route("/scim/v2/Bulk", any(bulk_any))
        .route("/scim/v2/Me", any(me_any))
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config_get),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types_get))
        .route("/scim/v2/ResourceTypes/{name}", get(resource_type_name_get))
        .route("/scim/v2/Schemas", get(schemas_get))
        .route("/scim/v2/Schemas/{urn}", get(schema_urn_get))
        .fallback(unknown_path)
        .layer(middleware::from_fn_with_state(request_timeout, deadline))
        .layer(middleware::map_response(scim_error_bodies))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::from_fn(crate::ops::record))
        .with_state(state)
}

// ------------------------------------------------------------------ users

async fn users_get(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    query: QueryParams,
) -> Result<Response, ScimError> {
    let params = ListParams::from_query(&query)?;
    list_users(&state, &caller, &base, params).await
}

async fn users_search(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let params = ListParams::from_search(&body)?;
    list_users(&state, &caller, &base, params).await
}

async fn users_post(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let request = create_request(&body)?;
    let user = state.core.create_user(&caller, request).await?;
    Ok(user_response(
        StatusCode::CREATED,
        &user,
        &base,
        &Projection::default(),
    ))
}

async fn user_get(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, ScimError> {
    let user = state.core.get_user(&caller, &id).await?;
    let projection = Projection::new(query.get("attributes"), query.get("excludedAttributes"));
    Ok(user_response(StatusCode::OK, &user, &base, &projection))
}

async fn user_put(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
    if_match: IfMatch,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let changes = replace_changes(&body)?;
    let user = match &if_match {
        // No stored state is needed: one call, the core compares versions.
        IfMatch::Absent | IfMatch::Any => {
            state
                .core
                .update_user(&caller, changes.into_request(&id, None))
                .await?
        }
        IfMatch::Versions(_) if if_match.single().is_some() => {
            let request = changes.into_request(&id, if_match.single());
            state.core.update_user(&caller, request).await?
        }
        IfMatch::Versions(_) => {
            update_checked(&state, &caller, &id, &if_match, |_| Ok(changes.clone())).await?
        }
    };
    Ok(user_response(
        StatusCode::OK,
        &user,
        &base,
        &Projection::default(),
    ))
}

async fn user_patch(
    State(state): State<AppState>,
    caller: Caller,
    base: BaseUrl,
    Path(id): Path<String>,
    if_match: IfMatch,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let user = update_checked(&state, &caller, &id, &if_match, |current| {
        let before = Model::from(current);
        let mut after = before.clone();
        apply_patch(&mut after, &body)?;
        Ok(after.changes_from(&before))
    })
    .await?;
    Ok(user_response(
        StatusCode::OK,
        &user,
        &base,
        &Projection::default(),
    ))
}

async fn user_delete() -> ScimError {
    ScimError::NotImplemented(
        "Users are never deleted. Deactivate the user instead: PATCH or PUT it with \
         \"active\": false. In Okta this is what Deactivate Users does; in Microsoft Entra, \
         turn off the Delete action of the provisioning mappings."
            .into(),
    )
}

/// Reads the user, checks `If-Match`, computes the changes from the stored
/// user and sends them in one `UpdateUser` with the stored version. A
/// version conflict is retried (re-read, re-computed) unless the client
/// named a version.
async fn update_checked(
    state: &AppState,
    caller: &Caller,
    id: &str,
    if_match: &IfMatch,
    compute: impl Fn(&pb::User) -> Result<Changes, ScimError>,
) -> Result<pb::User, ScimError> {
    for _ in 0..=CONFLICT_RETRIES {
        let current = state.core.get_user(caller, id).await?;
        if !if_match.matches(current.version) {
            return Err(precondition_failed());
        }
        let changes = compute(&current)?;
        if changes == Changes::default() {
            return Ok(current);
        }
        let request = changes.into_request(id, Some(current.version));
        match state.core.update_user(caller, request).await {
            Err(ScimError::PreconditionFailed(_))
                if matches!(if_match, IfMatch::Absent | IfMatch::Any) => {}
            Err(ScimError::PreconditionFailed(_)) => return Err(precondition_failed()),
            other => return other,
        }
    }
    Err(ScimError::Conflict {
        scim_type: None,
        detail: "The user kept changing while this request was applied; retry it.".into(),
    })
}

fn precondition_failed() -> ScimError {
    ScimError::PreconditionFailed(
        "The user's version does not match If-Match: it was changed since you read it. Read it \
         again and retry."
            .into(),
    )
}

/// One user, with `ETag` (and `Location` when created).
fn user_response(
    status: StatusCode,
    user: &pb::User,
    base: &BaseUrl,
    projection: &Projection,
) -> Response {
    let location = base.user(&user.id);
    let mut resource = to_resource(user, &location);
    projection.apply(&mut resource);
    let mut response = scim_response(status, &Value::Object(resource));
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&etag(user.version)) {
        headers.insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED
        && let Ok(location) = HeaderValue::from_str(&location)
    {
        headers.insert(header::LOCATION, location);
    }
    response
}

/// `filter`, paging and projection of a list request.
#[derive(Debug)]
struct ListParams {
    filter: Option<String>,
    start_index: i64,
    count: i64,
    projection: Projection,
}

impl ListParams {
    fn new(
        filter: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        projection: Projection,
    ) -> Self {
        Self {
            filter: filter
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            start_index: start_index.unwrap_or(1).max(1),
            count: count
                .unwrap_or(DEFAULT_COUNT)
                .clamp(0, discovery::MAX_RESULTS),
            projection,
        }
    }

    fn from_query(query: &QueryParams) -> Result<Self, ScimError> {
        let number = |name: &str| {
            query
                .get(name)
                .map(|v| parse_paging_number(name, v))
                .transpose()
        };
        Ok(Self::new(
            query.get("filter"),
            number("startIndex")?,
            number("count")?,
            Projection::new(query.get("attributes"), query.get("excludedAttributes")),
        ))
    }

    fn from_search(body: &Map<String, Value>) -> Result<Self, ScimError> {
        let number = |name: &str| match get_ci(body, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .map(Some)
                .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer."))),
            Some(Value::String(s)) => parse_paging_number(name, s).map(Some),
            Some(_) => Err(ScimError::invalid_value(format!(
                "{name} must be an integer."
            ))),
        };
        let text = |name: &str| match get_ci(body, name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Array(list)) => Ok(Some(
                list.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            )),
            Some(_) => Err(ScimError::invalid_value(format!(
                "{name} must be a string."
            ))),
        };
        let filter = text("filter")?;
        let attributes = text("attributes")?;
        let excluded = text("excludedAttributes")?;
        Ok(Self::new(
            filter.as_deref(),
            number("startIndex")?,
            number("count")?,
            Projection::new(attributes.as_deref(), excluded.as_deref()),
        ))
    }
}

async fn list_users(
    state: &AppState,
    caller: &Caller,
    base: &BaseUrl,
    params: ListParams,
) -> Result<Response, ScimError> {
    let filter = params
        .filter
        .as_deref()
        .map(|text| filter::parse_filter(text).and_then(|expr| filter::to_pb(&expr)))
        .transpose()
        .map_err(|e| {
            ScimError::bad_request(ScimType::InvalidFilter, format!("Invalid filter: {e}."))
        })?;
    let request = pb::ListUsersRequest {
        account: String::new(),
        filter,
        start_index: params.start_index,
        count: params.count,
    };
    let page = state.core.list_users(caller, request).await?;
    let resources = page
        .users
        .iter()
        .map(|user| {
            let mut resource = to_resource(user, &base.user(&user.id));
            params.projection.apply(&mut resource);
            Value::Object(resource)
        })
        .collect();
    let start_index = if page.start_index >= 1 {
        page.start_index
    } else {
        params.start_index
    };
    Ok(scim_response(
        StatusCode::OK,
        &list_response(page.total_results, start_index, resources),
    ))
}

// ----------------------------------------------------------------- groups

/// Okta calls this when an admin saves settings: always an empty list, but
/// only for a valid token.
async fn groups_get(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ScimError> {
    check_token(&state, &caller).await?;
    let start_index = query
        .get("startIndex")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .max(1);
    Ok(scim_response(
        StatusCode::OK,
        &list_response(0, start_index, Vec::new()),
    ))
}

async fn groups_search(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ScimError> {
    check_token(&state, &caller).await?;
    Ok(scim_response(
        StatusCode::OK,
        &list_response(0, 1, Vec::new()),
    ))
}

async fn group_id_get() -> ScimError {
    ScimError::NotFound("No group with this id exists: this service does not keep groups.".into())
}

async fn groups_write() -> ScimError {
    ScimError::NotImplemented(
        "Groups are not supported by this service. Turn off group push (Okta: Push Groups; \
         Microsoft Entra: the group provisioning mapping)."
            .into(),
    )
}

/// Asks the core whether the token is good (a count-only list).
async fn check_token(state: &AppState, caller: &Caller) -> Result<(), ScimError> {
    let request = pb::ListUsersRequest {
        count: 0,
        ..pb::ListUsersRequest::default()
    };
    state.core.list_users(caller, request).await.map(drop)
}

async fn bulk_any() -> ScimError {
    ScimError::NotImplemented("Bulk operations are not supported by this service.".into())
}

async fn me_any() -> ScimError {
    ScimError::NotImplemented("/Me is not supported by this service.".into())
}

// -------------------------------------------------------------- discovery

async fn service_provider_config_get(base: BaseUrl) -> Response {
    scim_response(StatusCode::OK, &discovery::service_provider_config(&base.0))
}

async fn resource_types_get(base: BaseUrl) -> Response {
    scim_response(StatusCode::OK, &discovery::resource_types(&base.0))
}

async fn resource_type_name_get(
    base: BaseUrl,
    Path(name): Path<String>,
) -> Result<Response, ScimError> {
    if name.eq_ignore_ascii_case("User") {
        Ok(scim_response(
            StatusCode::OK,
            &discovery::user_resource_type(&base.0),
        ))
    } else {
        Err(ScimError::NotFound(
            "No such resource type: this service serves User only.".into(),
        ))
    }
}

async fn schemas_get(base: BaseUrl) -> Response {
    scim_response(StatusCode::OK, &discovery::schemas(&base.0))
}

async fn schema_urn_get(base: BaseUrl, Path(urn): Path<String>) -> Result<Response, ScimError> {
    if urn.eq_ignore_ascii_case(USER_SCHEMA) {
        Ok(scim_response(
            StatusCode::OK,
            &discovery::user_schema(&base.0),
        ))
    } else {
        Err(ScimError::NotFound(
            "No such schema: this service serves the core User schema only.".into(),
        ))
    }
}

// ----------------------------------------------------------------- errors

async fn unknown_path() -> ScimError {
    ScimError::NotFound("Unknown endpoint. The SCIM base URL ends in /scim/v2.".into())
}

/// Answers 503 when the handler (its core calls and retries) takes longer
/// than `limit`, well before Okta's 60-second timeout.
async fn deadline(
    State(limit): State<std::time::Duration>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?limit, "request timed out");
            ScimError::Unavailable(
                "The request could not be completed in time; retry after the delay in Retry-After."
                    .into(),
                RETRY_AFTER_SECS,
            )
            .into_response()
        }
    }
}

/// Turns every error response that is not already a SCIM error (axum's own
/// rejections: 405, 413, 415, bad paths) into one.
async fn scim_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_scim = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == SCIM_JSON.as_bytes());
    if is_scim {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ScimError::NotFound("Unknown endpoint.".into()),
        StatusCode::METHOD_NOT_ALLOWED => {
            ScimError::MethodNotAllowed("This endpoint does not support this HTTP method.".into())
        }
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => unsupported_media_type(),
        StatusCode::BAD_REQUEST => ScimError::invalid_syntax("The request is malformed."),
        other => ScimError::Other {
            status: other,
            detail: other.canonical_reason().unwrap_or("Error").to_string(),
        },
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut scim = error.into_response();
    if let Some(allow) = allow {
        scim.headers_mut()
            .insert(HeaderName::from_static("allow"), allow);
    }
    scim
}

/// Collapses repeated slashes and drops a trailing slash, so a base URL
/// entered as `https://host/scim/v2/` still works.
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = request.uri().path();
    if !(path.contains("//") || (path.len() > 1 && path.ends_with('/'))) {
        return request;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(query) = request.uri().query() {
        clean.push('?');
        clean.push_str(query);
    }
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = clean.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}
