//! A custom webhook trigger's part in receiving a request: whether the request passes the
//! trigger's `filters`, and which provider account an app-level trigger's request belongs to.
//! Pure functions of the compiled trigger and the request, so that whatever receives webhooks
//! (with its own I/O) decides with the engine's one evaluation of conditions.

use para_build::CustomTrigger;
use serde_json::{Map, Value};

use crate::{conditions::holds, values::Scope};

/// Whether `request` (`{ method, headers, query, body }`) passes the trigger's filters; a
/// trigger without filters passes every request. Header names are compared lower-case, as
/// the filters are written (`request.headers['x-event']`), whatever case the request arrived
/// in. An error is a condition this engine cannot evaluate (an operator of a newer build):
/// the request should be refused, not run.
pub fn passes_filters(trigger: &CustomTrigger, request: &Value) -> Result<bool, String> {
    let Some(filters) = &trigger.filters else { return Ok(true) };
    let request = with_lower_case_headers(request);
    let scope = Scope { webhook_request: Some(&request), ..Scope::default() };
    holds(filters, &scope)
        .map_err(|e| format!("custom trigger `{}` ({}): {e}", trigger.name, trigger.id))
}

/// The provider account id an app-level trigger's request names (`mapPayload.providerId`),
/// as text; `None` when the trigger has no `providerId` or the request does not hold it.
pub fn provider_id(trigger: &CustomTrigger, request: &Value) -> Option<String> {
    let source = trigger.provider_id.as_ref()?;
    let request = with_lower_case_headers(request);
    let scope = Scope { webhook_request: Some(&request), ..Scope::default() };
    match crate::values::resolve(source, &scope)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        other @ (Value::Number(_) | Value::Bool(_)) => Some(other.to_string()),
        _ => None,
    }
}

fn with_lower_case_headers(request: &Value) -> Value {
    let mut request = request.clone();
    if let Some(Value::Object(headers)) = request.get_mut("headers")
        && headers.keys().any(|k| k.chars().any(|c| c.is_ascii_uppercase()))
    {
        let lowered: Map<String, Value> =
            std::mem::take(headers).into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        *headers = lowered;
    }
    request
}

#[cfg(test)]
mod tests {
    use para_build::{Condition, Operation, Source, TriggerLevel, TriggerSetup};
    use serde_json::json;

    use super::*;

    fn request_at(path: &[&str]) -> Source {
        Source::WebhookRequest { path: path.iter().map(|s| s.to_string()).collect() }
    }

    fn op(operator: &str, operands: Vec<Source>) -> Operation {
        Operation { operator: operator.into(), operands }
    }

    fn text(s: &str) -> Source {
        Source::text(s)
    }

    fn trigger(filters: Option<Condition>) -> CustomTrigger {
        CustomTrigger {
            id: "7b0c7f0e-0000-4000-8000-000000000001".into(),
            name: "Order shipped".into(),
            description: None,
            level: TriggerLevel::User,
            setup: TriggerSetup::Manual,
            filters,
            provider_id: None,
            sample_payload: Value::Null,
            source: "src/integrations/custom.shop/triggers/orderShipped.ts".into(),
        }
    }

    fn request(event: &str, header: &str, total: Value) -> Value {
        json!({
            "method": "POST",
            "headers": { header: event, "content-type": "application/json" },
            "query": { "shop": "acme" },
            "body": { "order": { "total": total, "tags": ["rush", "gift"] } },
        })
    }

    #[test]
    fn a_trigger_without_filters_passes_every_request() {
        assert_eq!(passes_filters(&trigger(None), &json!({})), Ok(true));
    }

    #[test]
    fn filters_read_headers_query_method_and_body() {
        // event == "order.shipped" AND (total > 100 OR tags contain "rush"), and a POST.
        let event = op(
            "$stringExactlyMatches",
            vec![request_at(&["headers", "x-event"]), text("order.shipped")],
        );
        let post = op("$stringExactlyMatches", vec![request_at(&["method"]), text("POST")]);
        let shop = op("$stringExactlyMatches", vec![request_at(&["query", "shop"]), text("acme")]);
        let big = op(
            "$numberGreaterThan",
            vec![request_at(&["body", "order", "total"]), Source::Value { value: json!(100) }],
        );
        let rush = op("$arrayIsIn", vec![request_at(&["body", "order", "tags"]), text("rush")]);
        let t = trigger(Some(Condition {
            or: vec![
                vec![event.clone(), post.clone(), shop.clone(), big],
                vec![event, post, shop, rush],
            ],
        }));
        assert_eq!(passes_filters(&t, &request("order.shipped", "x-event", json!(150))), Ok(true));
        // Header names arrive in any case; the filter reads them lower-case.
        assert_eq!(passes_filters(&t, &request("order.shipped", "X-Event", json!(5))), Ok(true));
        assert_eq!(passes_filters(&t, &request("order.created", "x-event", json!(150))), Ok(false));
        let mut no_rush = request("order.shipped", "x-event", json!(5));
        no_rush["body"]["order"]["tags"] = json!([]);
        assert_eq!(passes_filters(&t, &no_rush), Ok(false));
        let mut get = request("order.shipped", "x-event", json!(150));
        get["method"] = json!("GET");
        assert_eq!(passes_filters(&t, &get), Ok(false));
        // A request missing what the filter reads does not pass (and is no error).
        assert_eq!(passes_filters(&t, &json!({ "method": "POST" })), Ok(false));
    }

    #[test]
    fn an_operator_the_engine_does_not_know_is_an_error_naming_the_trigger() {
        let t = trigger(Some(Condition {
            or: vec![vec![op("$stringSoundsLike", vec![request_at(&["body"]), text("x")])]],
        }));
        let error = passes_filters(&t, &json!({ "body": "x" })).unwrap_err();
        assert!(error.contains("$stringSoundsLike") && error.contains("Order shipped"), "{error}");
    }

    #[test]
    fn every_operator_of_the_contract_is_evaluated() {
        for operator in para_build::OPERATORS {
            let t = trigger(Some(Condition {
                or: vec![vec![op(operator, vec![request_at(&["body", "a"]), text("b")])]],
            }));
            assert!(
                passes_filters(&t, &json!({ "body": { "a": "b" } })).is_ok(),
                "{operator} is in para_build::OPERATORS but the engine does not evaluate it"
            );
        }
    }

    #[test]
    fn provider_id_is_read_from_the_request_as_text() {
        let mut t = trigger(None);
        assert_eq!(provider_id(&t, &json!({})), None);
        t.level = TriggerLevel::App;
        t.provider_id = Some(Source::Tokenized { parts: vec![request_at(&["body", "portalId"])] });
        assert_eq!(
            provider_id(&t, &json!({ "body": { "portalId": 62515 } })),
            Some("62515".into())
        );
        t.provider_id = Some(request_at(&["headers", "x-team"]));
        let request = json!({ "headers": { "X-Team": "T1" } });
        assert_eq!(provider_id(&t, &request), Some("T1".into()));
        assert_eq!(provider_id(&t, &json!({ "body": {} })), None);
    }
}
