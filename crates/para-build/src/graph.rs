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
    /// `CustomTriggerStep(Trigger)`: one of the integration's custom webhook triggers
    /// (`Integration::custom_triggers`), by id.
    #[serde(rename = "TRIGGER/CUSTOM", rename_all = "camelCase")]
    CustomTrigger { trigger_id: String },
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

impl StepKind {
    /// The step's type as the build writes it (`ACTION/REQUEST`, `TRIGGER/EVENT`…): the same
    /// text as its serialised `type` (a test compares them for every kind).
    pub fn type_name(&self) -> &'static str {
        match self {
            StepKind::Endpoint { .. } => "TRIGGER/ENDPOINT",
            StepKind::Event { .. } => "TRIGGER/EVENT",
            StepKind::Cron { .. } => "TRIGGER/CRON",
            StepKind::IntegrationEnabled {} => "TRIGGER/INTEGRATION_ENABLED",
            StepKind::IntegrationTrigger { .. } => "TRIGGER/ACTION",
            StepKind::CustomTrigger { .. } => "TRIGGER/CUSTOM",
            StepKind::Unselected {} => "TRIGGER/UNSELECTED",
            StepKind::Request(_) => "ACTION/REQUEST",
            StepKind::IntegrationRequest(_) => "ACTION/INTEGRATION_REQUEST",
            StepKind::Function { .. } => "ACTION/FUNCTION",
            StepKind::IntegrationAction { .. } => "ACTION/INTEGRATION_ACTION",
            StepKind::Delay { .. } => "ACTION/DELAY",
            StepKind::Response { .. } => "ACTION/RESPONSE",
            StepKind::Conditional { .. } => "TRANSITION/IFELSE",
            StepKind::FanOut { .. } => "TRANSITION/MAP",
        }
    }
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

/// Every operator a [`Condition`] may use (`Operation::operator`): what the operators of
/// `@useparagon/core/operator` record, and what the engine evaluates (a test there checks each).
pub const OPERATORS: &[&str] = &[
    "$stringContains",
    "$stringDoesNotContain",
    "$stringExactlyMatches",
    "$stringDoesNotExactlyMatch",
    "$stringIsIn",
    "$stringIsNotIn",
    "$stringStartsWith",
    "$stringDoesNotStartWith",
    "$stringEndsWith",
    "$stringDoesNotEndWith",
    "$stringGreaterThan",
    "$stringLessThan",
    "$numberGreaterThan",
    "$numberLessThan",
    "$numberEquals",
    "$numberDoesNotEqual",
    "$numberGreaterThanOrEqualTo",
    "$numberLessThanOrEqualTo",
    "$dateTimeAfter",
    "$dateTimeBefore",
    "$dateTimeEquals",
    "$booleanTrue",
    "$booleanFalse",
    "$isNull",
    "$isNotNull",
    "$exists",
    "$doesNotExist",
    "$arrayIsIn",
    "$arrayIsNotIn",
    "$arrayIsEmpty",
    "$arrayIsNotEmpty",
    "$none",
];

/// One comparison: `$stringContains`, `$numberGreaterThan`, `$exists`, … over its operands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub operator: String,
    pub operands: Vec<Source>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `type_name` is the serialised `type` of every kind (a new kind fails to compile in
    /// `type_name` and must be added here).
    #[test]
    fn type_names_are_the_serialised_types() {
        let text = || Source::text("x");
        let request = || Request {
            http_method: "GET".into(),
            url: text(),
            params: Vec::new(),
            headers: Vec::new(),
            body: None,
            body_type: None,
            authorization: None,
            pagination: None,
        };
        let kinds = [
            StepKind::Endpoint {
                allow_arbitrary_payload: true,
                param_validations: Vec::new(),
                header_validations: Vec::new(),
                body_validations: Vec::new(),
            },
            StepKind::Event { event_id: "e".into(), event_name: "E".into() },
            StepKind::Cron { cron: "* * * * * *".into(), time_zone: "UTC".into() },
            StepKind::IntegrationEnabled {},
            StepKind::IntegrationTrigger {
                trigger: "t".into(),
                intent: None,
                parameters: Vec::new(),
            },
            StepKind::CustomTrigger { trigger_id: "t".into() },
            StepKind::Unselected {},
            StepKind::Request(request()),
            StepKind::IntegrationRequest(request()),
            StepKind::Function { code: String::new(), parameters: Vec::new() },
            StepKind::IntegrationAction {
                action: "a".into(),
                intent: None,
                parameters: Vec::new(),
            },
            StepKind::Delay { value: text(), unit: DelayUnit::Seconds },
            StepKind::Response { status_code: text(), response_type: "JSON".into(), body: text() },
            StepKind::Conditional {
                condition: Condition { or: Vec::new() },
                when_true: None,
                when_false: None,
            },
            StepKind::FanOut { iterator: text(), branch: None },
        ];
        for kind in kinds {
            let written = serde_json::to_value(&kind).unwrap();
            assert_eq!(written["type"], kind.type_name(), "{kind:?}");
        }
    }
}
