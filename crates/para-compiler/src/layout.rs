//! Which file means what, by its place in the project (PRODUCT.md §1).

use para_project::{Diagnostic, Project};

/// One `src/integrations/<key>/` folder.
pub struct IntegrationFolder {
    pub key: String,
    /// `src/integrations/<key>`
    pub path: String,
    /// `workflows/*.ts`, sorted.
    pub workflows: Vec<String>,
    /// `triggers/*.ts` (custom webhook triggers), sorted.
    pub triggers: Vec<String>,
}

/// The files whose meaning comes from their place.
#[derive(Default)]
pub struct Layout {
    pub persona: Option<String>,
    pub events: Vec<String>,
    pub integrations: Vec<IntegrationFolder>,
    pub resources: Vec<String>,
}

impl Layout {
    /// Classifies the project's files; also returns findings about files in odd places.
    pub fn of(project: &Project) -> (Layout, Vec<Diagnostic>) {
        let mut layout = Layout::default();
        let mut findings = Vec::new();
        for folder in &project.folders {
            let parts: Vec<&str> = folder.split('/').collect();
            if let ["src", "integrations", key] = parts.as_slice() {
                layout.integrations.push(IntegrationFolder {
                    key: key.to_string(),
                    path: folder.clone(),
                    workflows: Vec::new(),
                    triggers: Vec::new(),
                });
            }
        }
        for file in &project.files {
            let parts: Vec<&str> = file.path.split('/').collect();
            match parts.as_slice() {
                ["src", "persona.meta.ts"] => layout.persona = Some(file.path.clone()),
                ["src", "events", _] => layout.events.push(file.path.clone()),
                ["src", "integrations", key, "workflows", _] => {
                    if let Some(folder) = layout.integrations.iter_mut().find(|f| f.key == *key) {
                        folder.workflows.push(file.path.clone());
                    }
                }
                ["src", "integrations", key, "triggers", _] => {
                    if let Some(folder) = layout.integrations.iter_mut().find(|f| f.key == *key) {
                        folder.triggers.push(file.path.clone());
                    }
                }
                ["src", "integrations", _] => findings.push(
                    Diagnostic::warning("stray-file", "files directly in src/integrations/ are not part of any integration")
                        .in_file(&file.path)
                        .with_help("put integration code in src/integrations/<key>/ and shared code elsewhere under src/"),
                ),
                ["src", "resources", _, "config.ts"] => layout.resources.push(file.path.clone()),
                _ => {}
            }
        }
        (layout, findings)
    }
}
