//! The built-in integration catalog: which integration keys exist, their display names, and the
//! integration-specific User Setting types each one adds.
//!
//! This is the first slice of the catalog, enough for the compiler to tell a catalog key from a
//! typo and to validate input types. Auth facts, actions and triggers arrive with the catalog
//! work (data files per integration); the lookup API below stays.

/// One catalog integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogIntegration {
    /// The folder name real projects use: `salesforce`, `googleCalendar`, `microsoftTeams`.
    pub key: &'static str,
    pub name: &'static str,
    /// User Setting types this integration adds to the base ones.
    pub input_types: &'static [&'static str],
}

const fn entry(
    key: &'static str,
    name: &'static str,
    input_types: &'static [&'static str],
) -> CatalogIntegration {
    CatalogIntegration { key, name, input_types }
}

static CATALOG: &[CatalogIntegration] = &[
    entry("airtable", "Airtable", &["base", "table"]),
    entry("asana", "Asana", &["project", "workspace"]),
    entry("box", "Box", &["folder"]),
    entry("clickup", "ClickUp", &["list", "space"]),
    entry("dropbox", "Dropbox", &["folder"]),
    entry("github", "GitHub", &["repository"]),
    entry("gmail", "Gmail", &["label"]),
    entry("googleCalendar", "Google Calendar", &["calendar"]),
    entry("googledrive", "Google Drive", &["folder", "file"]),
    entry("googlesheets", "Google Sheets", &["spreadsheet", "sheet"]),
    entry("hubspot", "HubSpot", &["record_type", "pipeline", "owner"]),
    entry("intercom", "Intercom", &[]),
    entry("jira", "Jira", &["project", "issue_type"]),
    entry("klaviyo", "Klaviyo", &["list"]),
    entry("linear", "Linear", &["team", "project"]),
    entry("mailchimp", "Mailchimp", &["list"]),
    entry("marketo", "Marketo", &["record_type"]),
    entry("microsoftTeams", "Microsoft Teams", &["channel", "team"]),
    entry("notion", "Notion", &["database", "page"]),
    entry("onedrive", "OneDrive", &["folder"]),
    entry("outlook", "Outlook", &["calendar", "folder"]),
    entry("pipedrive", "Pipedrive", &["record_type", "pipeline"]),
    entry("quickbooks", "QuickBooks", &["account"]),
    entry("salesforce", "Salesforce", &["record_type", "owner", "campaign"]),
    entry("sharepoint", "SharePoint", &["site", "folder"]),
    entry("shopify", "Shopify", &[]),
    entry("slack", "Slack", &["channel"]),
    entry("trello", "Trello", &["board", "list"]),
    entry("xero", "Xero", &["account"]),
    entry("zendesk", "Zendesk", &["group"]),
    entry("zoom", "Zoom", &[]),
];

/// User Setting types every integration accepts.
pub const BASE_INPUT_TYPES: &[&str] =
    &["text", "number", "boolean", "password", "field_mapping", "custom_dropdown"];

/// The catalog integration with this key (exact, case-sensitive: keys are folder names).
pub fn lookup(key: &str) -> Option<&'static CatalogIntegration> {
    CATALOG.iter().find(|i| i.key == key)
}

/// Every catalog integration, sorted by key.
pub fn all() -> &'static [CatalogIntegration] {
    CATALOG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_sorted_and_unique() {
        let keys: Vec<_> = all().iter().map(|i| i.key.to_lowercase()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert_eq!(lookup("slack").unwrap().name, "Slack");
        assert!(lookup("Slack").is_none());
    }
}
