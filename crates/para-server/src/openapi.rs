//! The OpenAPI 3.1 document of the JSON APIs `para serve` answers, served at
//! `GET /openapi.json`.
//!
//! Nothing in it is written by hand: each route's handler carries a `#[utoipa::path]`
//! attribute (method, path, parameters, answers) and its answers are `ToSchema` types, and
//! `crate::routes::routes` registers every handler on the router and in the document in the
//! same call (`utoipa_axum::routes!`), so a route cannot be served without being documented at
//! the path and method it is served on. What is added here is what every route shares: the
//! user-token security scheme and the error answers, which all have the `ApiError` shape
//! ([`crate::error`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The name of the security scheme of routes that take a user token.
pub const USER_TOKEN: &str = "user_token";
/// The name of the security scheme of the deploy API (`PARA_DEPLOY_KEY`).
pub const DEPLOY_KEY: &str = "deploy_key";

/// The document's fixed parts; the paths come from the router ([`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Paragraph",
        description = "The JSON APIs of `para serve`: the Connect API the `@useparagon/connect` \
            SDK calls, configurations, OAuth, triggers, trigger types, task history and \
            resources. The proxy (`/projects/{project}/sdk/proxy/…`) passes requests through to \
            integrations and is not described here; neither are the HTML pages (portal, \
            dashboard, the OAuth popup's pages)."
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "connect", description = "The Connect API: the user, integrations, credentials, workflow toggles, setting choices"),
        (name = "configurations", description = "Several configurations per credential"),
        (name = "oauth", description = "The OAuth sign-in the SDK drives"),
        (name = "triggers", description = "App Events and request triggers, which start runs"),
        (name = "trigger-types", description = "The trigger types getTriggers lists"),
        (name = "trigger-subscriptions", description = "The Triggers API: a user's subscriptions to trigger types, delivered to the company's webhook"),
        (name = "history", description = "Task history: runs and their steps"),
        (name = "resources", description = "Resources: credentials shared by several integrations"),
        (name = "meta", description = "The server itself"),
        (name = "deploy", description = "Releases: builds pushed with `para push`, the deploy key's"),
    )
)]
pub struct ApiDoc;

/// The user token: a JWT the company's backend signs (`paragon.authenticate`), sent as
/// `Authorization: Bearer <token>`.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            USER_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The user's token (paragon.authenticate). Task history also takes the \
                         project's admin key (PARA_ADMIN_KEY) here.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            DEPLOY_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The server's deploy key (PARA_DEPLOY_KEY), which `para push` sends.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds to every operation the error answers every route can give (a bad request, a missing
/// token, a route's own refusals, a storage failure): `4XX` and `5XX`, each an `ApiError`.
pub(crate) fn add_errors(doc: &mut Document) {
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses.entry("4XX".into()).or_insert_with(|| {
                error("The request was refused: the `message` says why and what to do").into()
            });
            responses
                .entry("5XX".into())
                .or_insert_with(|| error("The server or an integration failed").into());
        }
    }
}

/// The schema of a status the store keeps as an enum (`para_store::CredentialStatus`,
/// `RunStatus`, `StepStatus`): a string, one of its texts. For `#[schema(schema_with = …)]`,
/// since those types know nothing of OpenAPI.
fn status_texts(texts: impl IntoIterator<Item = &'static str>) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(texts))
        .build()
}

pub(crate) fn credential_status() -> utoipa::openapi::Object {
    status_texts(para_store::CredentialStatus::ALL.iter().map(|s| s.as_str()))
}

pub(crate) fn run_status() -> utoipa::openapi::Object {
    status_texts(para_store::RunStatus::ALL.iter().map(|s| s.as_str()))
}

pub(crate) fn step_status() -> utoipa::openapi::Object {
    status_texts(para_store::StepStatus::ALL.iter().map(|s| s.as_str()))
}
