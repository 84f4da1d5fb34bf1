//! A workflow's step graph: the steps `define()` builds, their parameters as value sources, and
//! the edges between them. The engine runs workflows from this alone.

use serde::{Deserialize, Serialize};

use crate::{Entry, Source};

/// One step. `next` is the step that runs after this one (for a conditional or fan-out: after
/// the branches have finished); `None` ends the chain, and inside a branch returns control to
/// the enclosing conditional or fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// UUID v5 of the workflow id and `key`: stable across rebuilds.
    pub id: String,
    /// The name given to the step in `this.register({ key: step })`.
    pub key: String,
    #[serde(flatten)]
    pub kind: StepKind,
    pub description: Option<String>,
    /// Retry a failing step (up to 5 times, backing off).
    pub auto_retry: bool,
    /// On failure, hand the error to the next step as this step's output instead of failing.
    pub continue_workflow_on_error: bool,
    pub next: Option<String>,
    /// Where the step is created, `file:line:col` in the TypeScript source.
    pub source: Option<String>,
}

/// What a step does, with its type-specific parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "parameters")]
pub enum StepKind {
    /// `EndpointStep`: a request trigger answering `POST /sdk/triggers/{workflowId}`.
    #[serde(rename = "TRIGGER/ENDPOINT", rename_all = "camelCase")]
    Endpoint {
        allow_arbitrary_payload: bool,
        param_validations: Vec<Validation>,
        header_validations: Vec<Validation>,
        body_validations: Vec<Validation>,
    },
    /// `EventStep(event)`: an App Event.
    #[serde(rename = "TRIGGER/EVENT", rename_all = "camelCase")]
    Event { event_id: String, event_name: String },
    /// `CronStep`: six fields, seconds first, in an IANA time zone.
    #[serde(rename = "TRIGGER/CRON", rename_all = "camelCase")]
    Cron { cron: String, time_zone: String },
    /// `IntegrationEnabledStep`: when a user connects the integration.
    #[serde(rename = "TRIGGER/INTEGRATION_ENABLED")]
    IntegrationEnabled {},
    /// `integration.triggers.<name>(params)`: a catalog trigger (webhook or polling).
    #[serde(rename = "TRIGGER/ACTION")]
    IntegrationTrigger {
        trigger: String,
        /// The catalog's id for the trigger (`RECORD_CREATED`); absent when the catalog does not
        /// know it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<String>,
        parameters: Vec<Entry>,
    },
    /// `CustomTriggerStep(trigger)`: a project-defined webhook trigger.
    #[serde(rename = "TRIGGER/CUSTOM")]
    CustomTrigger { trigger: Source },
    /// `UnselectedStep`: a trigger not chosen yet; the workflow never runs.
    #[serde(rename = "TRIGGER/UNSELECTED")]
    Unselected {},
    /// `RequestStep`: an HTTP request to any URL.
    #[serde(rename = "ACTION/REQUEST")]
    Request(Request),
    /// `IntegrationRequestStep`: a request relative to the integration's API base URL, with the
    /// user's credentials applied.
    #[serde(rename = "ACTION/INTEGRATION_REQUEST")]
    IntegrationRequest(Request),
    /// `FunctionStep`: JavaScript run in the sandbox.
    #[serde(rename = "ACTION/FUNCTION")]
    Function {
        /// The function's source text after type stripping.
        code: String,
        parameters: Vec<Entry>,
    },
    /// `integration.actions.<name>(params)`: a catalog action.
    #[serde(rename = "ACTION/INTEGRATION_ACTION")]
    IntegrationAction {
        action: String,
        /// The catalog's id for the action (`CREATE_RECORD`); absent when the catalog does not
        /// know it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        intent: Option<String>,
        parameters: Vec<Entry>,
    },
    /// `DelayStep`.
    #[serde(rename = "ACTION/DELAY")]
    Delay { value: Source, unit: DelayUnit },
    /// `ResponseStep`: the answer of a request-triggered workflow.
    #[serde(rename = "ACTION/RESPONSE", rename_all = "camelCase")]
    Response { status_code: Source, response_type: String, body: Source },
    /// `ConditionalStep`.
    #[serde(rename = "TRANSITION/IFELSE", rename_all = "camelCase")]
    Conditional {
        condition: Condition,
        /// First step of the `whenTrue` branch.
        when_true: Option<String>,
        /// First step of the `whenFalse` branch.
        when_false: Option<String>,
    },
    /// `FanOutStep`: runs `branch` once per item of `iterator`.
    #[serde(rename = "TRANSITION/MAP")]
    FanOut { iterator: Source, branch: Option<String> },
}

/// Parameters shared by both request steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    pub http_method: String,
    pub url: Source,
    pub params: Vec<Entry>,
    pub headers: Vec<Entry>,
    pub body: Option<Source>,
    /// `json` (default), `form-data`, `x-www-form-urlencoded`, `xml`, `raw`…, as written.
    pub body_type: Option<String>,
    pub authorization: Option<Source>,
    pub pagination: Option<Pagination>,
}

/// `pagination: (step) => ({ pageToken, outputPath, stopCondition })`. Inside `url`, `params`,
/// `headers` and `body`, the current page token is the `PAGE_TOKEN` source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page_token: Source,
    pub output_path: Option<Source>,
    pub stop_condition: Option<Condition>,
}

/// A rule an endpoint trigger checks on each request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub key: String,
    pub required: bool,
    /// For body validations: `STRING`, `NUMBER`, `BOOLEAN`, `OBJECT` or `ARRAY`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DelayUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

/// A condition, normalised to an OR of ANDs: true when every operation of any one group holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub or: Vec<Vec<Operation>>,
}

/// One comparison: `$stringContains`, `$numberGreaterThan`, `$exists`, … over its operands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub operator: String,
    pub operands: Vec<Source>,
}
