//! TypeScript → JavaScript with oxc, plus what the compiler needs to know about a file's shape
//! without evaluating it: its runtime imports and where each object/class property is written.

use std::{path::Path, sync::OnceLock};

use oxc::{
    allocator::Allocator,
    ast::ast::{
        ArrayExpression, ExportAllDeclaration, ExportDefaultDeclaration, ExportFromDeclaration,
        Expression, ImportDeclaration, ImportExpression, MethodDefinition, ObjectProperty,
        PropertyDefinition, Statement, StringLiteral, VariableDeclarator,
    },
    ast_visit::{Visit, walk},
    codegen::{Codegen, CodegenOptions, IndentChar},
    diagnostics::OxcDiagnostic,
    parser::Parser,
    semantic::SemanticBuilder,
    span::{GetSpan, SourceType},
    transformer::{TransformOptions, Transformer},
};
use oxc_sourcemap::SourceMap;
use para_project::{Diagnostic, Span, from_oxc};

/// A module specifier imported by a file (not `import type`), and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub specifier: String,
    /// The span of the specifier's string literal.
    pub span: Span,
    /// True when type erasure removed the import (everything it brings is used only as a type),
    /// so it is never loaded.
    pub erased: bool,
    /// `import('…')` rather than a declaration.
    pub dynamic: bool,
}

/// Where a property is written: the chain of enclosing property names (object literal keys,
/// class fields and methods, and array indexes inside them), innermost last. `{ a: { b: [1] } }` records
/// `["a"]`, `["a", "b"]` and `["a", "b", "0"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySite {
    pub path: Vec<String>,
    /// The span of the key.
    pub key: Span,
}

/// One transpiled file.
pub struct Transpiled {
    pub js: String,
    path: String,
    source: String,
    map: OnceLock<Option<SourceMap<'static>>>,
    pub imports: Vec<Import>,
    pub properties: Vec<PropertySite>,
    /// `const name = …` declarations: (name, span of the name), in source order.
    pub bindings: Vec<(String, Span)>,
    /// The span of `export default …`, if the file has one.
    pub default_export: Option<Span>,
}

impl Transpiled {
    /// The TypeScript position (1-based line and column) of a 1-based position in the generated
    /// JavaScript, through the source map.
    pub fn original_position(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let map = self.source_map()?;
        let table = map.generate_lookup_table();
        let token = map.lookup_token(&table, line.checked_sub(1)?, column.saturating_sub(1))?;
        Some((token.get_src_line() + 1, token.get_src_col() + 1))
    }

    /// The source map, built on first use.
    fn source_map(&self) -> Option<&SourceMap<'static>> {
        self.map
            .get_or_init(|| {
                generate(&self.path, &self.source, true).ok().and_then(|(_, map, _)| map)
            })
            .as_ref()
    }

    /// The first `const name = …` declaring `name`.
    pub fn find_binding(&self, name: &str) -> Option<Span> {
        self.bindings.iter().find(|(n, _)| n == name).map(|(_, span)| *span)
    }

    /// The key of the property best matching `path`: an exact match of the whole chain if there is
    /// one, else the shortest chain ending with `path`.
    pub fn find_property(&self, path: &[&str]) -> Option<&PropertySite> {
        let ends_with = |site: &&PropertySite| {
            site.path.len() >= path.len()
                && site.path[site.path.len() - path.len()..].iter().zip(path).all(|(a, b)| a == b)
        };
        self.properties
            .iter()
            .filter(ends_with)
            .min_by_key(|site| (site.path.len(), site.key.start))
    }
}

fn span_of(s: oxc::span::Span) -> Span {
    Span::new(s.start, s.end)
}

#[derive(Default)]
struct Outline {
    stack: Vec<String>,
    imports: Vec<Import>,
    properties: Vec<PropertySite>,
    bindings: Vec<(String, Span)>,
    default_export: Option<Span>,
}

impl Outline {
    /// Records a module specifier; `import type` / `export type … from` bring no runtime module.
    fn record_import(&mut self, source: &StringLiteral<'_>, type_only: bool, dynamic: bool) {
        if !type_only {
            self.imports.push(Import {
                specifier: source.value.to_string(),
                span: span_of(source.span),
                erased: false,
                dynamic,
            });
        }
    }

    fn enter(&mut self, name: Option<String>, key: Span) -> bool {
        match name {
            Some(name) => {
                self.stack.push(name);
                self.properties.push(PropertySite { path: self.stack.clone(), key });
                true
            }
            None => false,
        }
    }
}

impl<'a> Visit<'a> for Outline {
    fn visit_object_property(&mut self, it: &ObjectProperty<'a>) {
        let pushed =
            self.enter(it.key.static_name().map(|n| n.into_owned()), span_of(it.key.span()));
        walk::walk_object_property(self, it);
        if pushed {
            self.stack.pop();
        }
    }

    fn visit_property_definition(&mut self, it: &PropertyDefinition<'a>) {
        let pushed =
            self.enter(it.key.static_name().map(|n| n.into_owned()), span_of(it.key.span()));
        walk::walk_property_definition(self, it);
        if pushed {
            self.stack.pop();
        }
    }

    fn visit_method_definition(&mut self, it: &MethodDefinition<'a>) {
        let pushed =
            self.enter(it.key.static_name().map(|n| n.into_owned()), span_of(it.key.span()));
        walk::walk_method_definition(self, it);
        if pushed {
            self.stack.pop();
        }
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if let Some(id) = it.id.get_binding_identifier() {
            self.bindings.push((id.name.to_string(), span_of(id.span)));
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_array_expression(&mut self, it: &ArrayExpression<'a>) {
        // Elements are recorded by index only inside a property (`list: [a, b]` → `["list", "1"]`).
        if self.stack.is_empty() {
            walk::walk_array_expression(self, it);
            return;
        }
        for (index, element) in it.elements.iter().enumerate() {
            let span = span_of(element.span());
            self.enter(Some(index.to_string()), span);
            self.visit_array_expression_element(element);
            self.stack.pop();
        }
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        self.record_import(&it.source, it.import_kind.is_type(), false);
    }

    fn visit_export_from_declaration(&mut self, it: &ExportFromDeclaration<'a>) {
        self.record_import(&it.source, it.export_kind.is_type(), false);
    }

    fn visit_export_all_declaration(&mut self, it: &ExportAllDeclaration<'a>) {
        self.record_import(&it.source, it.export_kind.is_type(), false);
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        if let Expression::StringLiteral(lit) = &it.source {
            self.record_import(lit, false, true);
        }
        walk::walk_import_expression(self, it);
    }

    fn visit_export_default_declaration(&mut self, it: &ExportDefaultDeclaration<'a>) {
        self.default_export = Some(span_of(it.span));
        walk::walk_export_default_declaration(self, it);
    }
}

fn convert(path: &str, diags: Vec<OxcDiagnostic>) -> Vec<Diagnostic> {
    diags.into_iter().map(|d| from_oxc(path, d, "syntax")).collect()
}

/// Transpiles one TypeScript file. `path` is the project-relative name used in diagnostics and as
/// the source map's file name. Every syntax error oxc finds in the file is returned.
///
/// The source map is not built here: it is needed only to place a finding, so it is built on
/// first use by transpiling the file again (the output is deterministic).
pub fn transpile(path: &str, source: &str) -> Result<Transpiled, Vec<Diagnostic>> {
    let (js, _, outline) = generate(path, source, false)?;
    Ok(Transpiled {
        js,
        path: path.to_string(),
        source: source.to_string(),
        map: OnceLock::new(),
        imports: outline.imports,
        properties: outline.properties,
        bindings: outline.bindings,
        default_export: outline.default_export,
    })
}

/// Parses, checks, erases types and prints one file; with `with_map`, also its source map.
fn generate(
    path: &str,
    source: &str,
    with_map: bool,
) -> Result<(String, Option<SourceMap<'static>>, Outline), Vec<Diagnostic>> {
    let allocator = Allocator::default();
    let source_type = SourceType::from_path(Path::new(path)).unwrap_or_else(|_| SourceType::ts());
    let parsed = Parser::new(&allocator, source, source_type).parse();
    if parsed.panicked || !parsed.diagnostics.is_empty() {
        let diags = convert(path, parsed.diagnostics.into_vec());
        if parsed.panicked || diags.iter().any(Diagnostic::is_error) {
            return Err(diags);
        }
    }
    let mut program = parsed.program;
    // The outline is read before types are erased: an import that is written but unused is still
    // checked (only `import type` is exempt), and spans are the source's own.
    let mut outline = Outline::default();
    outline.visit_program(&program);
    let semantic =
        SemanticBuilder::new().with_enum_eval(true).with_check_syntax_error(true).build(&program);
    if semantic.diagnostics.has_errors() {
        return Err(convert(path, semantic.diagnostics.into_vec()));
    }
    let scoping = semantic.semantic.into_scoping();
    let options = TransformOptions::default();
    let transformed = Transformer::new(&allocator, Path::new(path), &options)
        .build_with_scoping(scoping, &mut program);
    if transformed.diagnostics.has_errors() {
        return Err(convert(path, transformed.diagnostics.into_vec()));
    }
    // Which imports survive type erasure (the ones the engine will load): module declarations
    // are top-level statements, so a look at those is enough.
    let kept: Vec<Span> = program
        .body
        .iter()
        .filter_map(|statement| match statement {
            Statement::ImportDeclaration(d) => Some(span_of(d.source.span)),
            Statement::ExportFromDeclaration(d) => Some(span_of(d.source.span)),
            Statement::ExportAllDeclaration(d) => Some(span_of(d.source.span)),
            _ => None,
        })
        .collect();
    for import in &mut outline.imports {
        import.erased = !import.dynamic && !kept.contains(&import.span);
    }
    let generated = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: with_map.then(|| path.into()),
            // Function steps keep their source text: make it read the way TypeScript is written.
            indent_char: IndentChar::Space,
            indent_width: 2,
            single_quote: true,
            ..CodegenOptions::default()
        })
        .build(&program);
    Ok((generated.code, generated.map.map(|m| m.into_owned()), outline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_types_and_records_shape() {
        let src = "import { IContext } from '@useparagon/core/execution';\n\
                   import { createInputs } from '@useparagon/core/inputs';\n\
                   export default createInputs({ a: { id: 'x', title: 'T' as string } });\n";
        let out = transpile("src/inputs.ts", src).unwrap();
        assert!(!out.js.contains("as string"));
        let specifiers: Vec<_> = out.imports.iter().map(|i| i.specifier.as_str()).collect();
        assert_eq!(specifiers, ["@useparagon/core/execution", "@useparagon/core/inputs"]);
        assert_eq!(out.imports.iter().map(|i| i.erased).collect::<Vec<_>>(), [true, false]);
        let typed =
            transpile("src/t.ts", "import type { X } from 'some-types';\nexport type Y = X;\n")
                .unwrap();
        assert!(typed.imports.is_empty(), "`import type` is exempt");
        let site = out.find_property(&["a", "title"]).unwrap();
        assert_eq!(&src[site.key.start as usize..site.key.end as usize], "title");
        assert!(out.default_export.is_some());
    }

    #[test]
    fn reports_syntax_errors_with_location() {
        let errors = transpile("src/bad.ts", "const x = ;\n").err().unwrap();
        assert_eq!(errors[0].code, "syntax");
        assert_eq!(errors[0].location.as_ref().unwrap().span.unwrap().start, 10);
    }
}

#[cfg(test)]
mod map_tests {
    use super::*;

    #[test]
    fn the_output_is_the_same_with_and_without_a_source_map() {
        let src = "const a: number = 1;\nexport function f(x: string) {\n  return x + a;\n}\n";
        let (plain, none, _) = generate("src/f.ts", src, false).unwrap();
        let (mapped, map, _) = generate("src/f.ts", src, true).unwrap();
        assert_eq!(plain, mapped);
        assert!(none.is_none() && map.is_some());
        let t = transpile("src/f.ts", src).unwrap();
        let line = t.js.lines().position(|l| l.contains("return")).unwrap() as u32 + 1;
        assert_eq!(t.original_position(line, 3).map(|(l, _)| l), Some(3));
    }
}
