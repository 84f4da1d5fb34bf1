//! Direct recording: what `js/core.js` records, computed from the syntax tree without starting
//! the JavaScript engine.
//!
//! Project files that declare things (configs, inputs, events, persona, workflow classes and their
//! `define()`) are nearly always written in a small part of the language: literals, templates,
//! property reads, calls of `@useparagon/*` functions and of the project's own simple helpers,
//! `new …Step(…)` and step chaining. This module interprets exactly that part over oxc's tree of
//! the transpiled file and answers `describeModule` and `describeWorkflow` with the same JSON
//! the engine's `__para` functions give. Anything outside that part — a loop, an assignment, a
//! method of a built-in, an `await`, a global, a value whose behaviour it does not model — makes
//! it give up on that file, and the compiler asks the engine instead. It never approximates: a
//! file is recorded directly only when every construct it runs has the engine's exact meaning.
//!
//! The differential test in `tests/direct.rs` builds every fixture and example both ways and
//! compares the whole output. `PARA_TRACE_DIRECT=1` (`Options::trace_direct`) prints why a file went to the engine.

use std::{
    cell::RefCell,
    collections::{HashMap, HashSet},
    rc::Rc,
};

use oxc::{
    allocator::Allocator,
    ast::ast::{
        Argument, ArrayExpressionElement, ArrowFunctionBody, BinaryOperator, BindingPattern,
        ChainElement, Class, ClassElement, Declaration, ExportDefaultDeclarationKind, Expression,
        FormalParameters, Function, FunctionBody, ImportDeclarationSpecifier, LogicalOperator,
        MethodDefinitionKind, ModuleExportName, ObjectPropertyKind, PropertyKey, PropertyKind,
        Statement, UnaryOperator, VariableDeclarationKind,
    },
    parser::Parser,
    span::{GetSpan, SourceType},
};
use para_js::{Modules, resolve_relative};
use serde_json::{Map, Value, json};

use crate::lower::{FUNCTION, REF, STEP, TEMPLATE, WORKFLOW};

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
const BARE: char = '\u{E002}';

/// Deepest call nesting of project functions followed before giving up.
const MAX_DEPTH: usize = 64;
/// Expressions evaluated and values serialised per description before giving up: code that
/// does this much work is left to the engine, whose time and memory limits then apply.
const MAX_WORK: usize = 2_000_000;
/// Longest string built before giving up (the engine's memory limit then applies).
const MAX_STRING: usize = 1 << 20;

/// Why a file is left to the engine (or, internally, an optional chain that stopped).
#[derive(Debug)]
enum Bail {
    Unsupported(String),
    Short,
}

type R<T> = Result<T, Bail>;

fn no<T>(why: impl Into<String>) -> R<T> {
    Err(Bail::Unsupported(why.into()))
}

/// A value while recording, mirroring the JavaScript value it stands for.
#[derive(Clone)]
enum V<'a> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(Rc<str>),
    Arr(Rc<Vec<V<'a>>>),
    Obj(Rc<Obj<'a>>),
    /// A reference to a run-time value (core.js `reference()`).
    Ref(Rc<Reference>),
    /// A step of the recording, by serial.
    Step(usize),
    Fun(Rc<Closure<'a>>),
    Class(Rc<ClassDef<'a>>),
    /// An instance of a workflow class.
    This(Rc<Instance<'a>>),
    Native(Native),
    Handle(Handle),
    Namespace(Rc<ModuleRec<'a>>),
}

type Props<'a> = Vec<(Rc<str>, V<'a>)>;

/// A plain object, or one made by `createInputs`/`createConfigInputs`.
struct Obj<'a> {
    props: Props<'a>,
    input: Option<InputMeta>,
}

/// The hidden `INPUT` marker core.js puts on inputs (`kind` "input"/"configInput", with its key)
/// and on the object holding them ("inputs"/"configInputs").
#[derive(Clone)]
struct InputMeta {
    kind: &'static str,
    key: Option<Rc<str>>,
}

/// A reference: its root descriptor (with its own `path`) and the properties read since.
struct Reference {
    base: Rc<Value>,
    path: Vec<Rc<str>>,
}

struct Closure<'a> {
    name: Rc<str>,
    params: &'a FormalParameters<'a>,
    body: Body<'a>,
    env: Rc<Env<'a>>,
    /// An arrow function's `this`, from where it was written.
    this: Option<V<'a>>,
    /// The source text `String(fn)` gives; `None` for methods (not modelled).
    source: Option<&'a str>,
    callable: bool,
    text: &'a str,
}

#[derive(Clone, Copy)]
enum Body<'a> {
    Block(&'a FunctionBody<'a>),
    Expr(&'a Expression<'a>),
}

/// The key of a member expression.
#[derive(Clone, Copy)]
enum Key<'a> {
    Name(&'a str),
    Computed(&'a Expression<'a>),
}

struct ClassDef<'a> {
    class: &'a Class<'a>,
    env: Rc<Env<'a>>,
    text: &'a str,
}

struct Instance<'a> {
    class: Rc<ClassDef<'a>>,
    fields: RefCell<Props<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepCtor {
    Endpoint,
    Event,
    Cron,
    IntegrationEnabled,
    Unselected,
    Function,
    Delay,
    Response,
    Request,
    IntegrationRequest,
    Conditional,
    FanOut,
}

impl StepCtor {
    fn of(name: &str) -> Option<StepCtor> {
        Some(match name {
            "EndpointStep" => StepCtor::Endpoint,
            "EventStep" => StepCtor::Event,
            "CronStep" => StepCtor::Cron,
            "IntegrationEnabledStep" => StepCtor::IntegrationEnabled,
            "UnselectedStep" => StepCtor::Unselected,
            "FunctionStep" => StepCtor::Function,
            "DelayStep" => StepCtor::Delay,
            "ResponseStep" => StepCtor::Response,
            "RequestStep" => StepCtor::Request,
            "IntegrationRequestStep" => StepCtor::IntegrationRequest,
            "ConditionalStep" => StepCtor::Conditional,
            "FanOutStep" => StepCtor::FanOut,
            _ => return None,
        })
    }

    fn step_type(self) -> &'static str {
        match self {
            StepCtor::Endpoint => "TRIGGER/ENDPOINT",
            StepCtor::Event => "TRIGGER/EVENT",
            StepCtor::Cron => "TRIGGER/CRON",
            StepCtor::IntegrationEnabled => "TRIGGER/INTEGRATION_ENABLED",
            StepCtor::Unselected => "TRIGGER/UNSELECTED",
            StepCtor::Function => "ACTION/FUNCTION",
            StepCtor::Delay => "ACTION/DELAY",
            StepCtor::Response => "ACTION/RESPONSE",
            StepCtor::Request => "ACTION/REQUEST",
            StepCtor::IntegrationRequest => "ACTION/INTEGRATION_REQUEST",
            StepCtor::Conditional => "TRANSITION/IFELSE",
            StepCtor::FanOut => "TRANSITION/MAP",
        }
    }
}

/// The functions of `@useparagon/*` (and of the recording's handles), as values.
#[derive(Clone)]
enum Native {
    CreateInputs(&'static str),
    Operator(&'static str, usize),
    And,
    Or,
    Step(StepCtor),
    Workflow,
    GetInput,
    GetSecret,
    Register,
    Define,
    DefinePermissions,
    /// A step's `nextStep`, `next`, `whenTrue`, `whenFalse` or `branch`.
    StepMethod(&'static str, usize),
    /// `integration.actions.<name>` or `integration.triggers.<name>`.
    Action(&'static str, Rc<str>),
    /// `integration.withTrigger(trigger, parameters, options)`.
    WithTrigger,
}

/// The objects `define()` receives, and the operator table.
#[derive(Clone, Copy)]
enum Handle {
    Integration,
    Actions,
    Triggers,
    Context,
    ConnectUser,
    Operators,
}

/// Condition operators: export name, recorded operator, operand count (core.js `OPERATOR_TABLE`).
const OPERATORS: &[(&str, &str, usize)] = &[
    ("StringContains", "$stringContains", 2),
    ("StringDoesNotContain", "$stringDoesNotContain", 2),
    ("StringExactlyMatches", "$stringExactlyMatches", 2),
    ("StringDoesNotExactlyMatch", "$stringDoesNotExactlyMatch", 2),
    ("StringIsIn", "$stringIsIn", 2),
    ("StringIsNotIn", "$stringIsNotIn", 2),
    ("StringStartsWith", "$stringStartsWith", 2),
    ("StringDoesNotStartWith", "$stringDoesNotStartWith", 2),
    ("StringEndsWith", "$stringEndsWith", 2),
    ("StringDoesNotEndWith", "$stringDoesNotEndWith", 2),
    ("StringGreaterThan", "$stringGreaterThan", 2),
    ("StringLessThan", "$stringLessThan", 2),
    ("NumberGreaterThan", "$numberGreaterThan", 2),
    ("NumberLessThan", "$numberLessThan", 2),
    ("NumberEquals", "$numberEquals", 2),
    ("NumberDoesNotEqual", "$numberDoesNotEqual", 2),
    ("NumberGreaterThanOrEqualTo", "$numberGreaterThanOrEqualTo", 2),
    ("NumberLessThanOrEqualTo", "$numberLessThanOrEqualTo", 2),
    ("DateTimeAfter", "$dateTimeAfter", 2),
    ("DateTimeBefore", "$dateTimeBefore", 2),
    ("DateTimeEquals", "$dateTimeEquals", 2),
    ("BooleanTrue", "$booleanTrue", 1),
    ("BooleanFalse", "$booleanFalse", 1),
    ("IsNull", "$isNull", 1),
    ("IsNotNull", "$isNotNull", 1),
    ("Exists", "$exists", 1),
    ("DoesNotExist", "$doesNotExist", 1),
    ("ArrayIsIn", "$arrayIsIn", 2),
    ("ArrayIsNotIn", "$arrayIsNotIn", 2),
    ("ArrayIsEmpty", "$arrayIsEmpty", 1),
    ("ArrayIsNotEmpty", "$arrayIsNotEmpty", 1),
    ("None", "$none", 0),
];

fn operator<'a>(name: &str) -> Option<V<'a>> {
    match name {
        "And" => Some(V::Native(Native::And)),
        "Or" => Some(V::Native(Native::Or)),
        _ => OPERATORS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, op, arity)| V::Native(Native::Operator(op, arity))),
    }
}

/// Names every object inherits from `Object.prototype`: reading one is not modelled.
fn inherited(key: &str) -> bool {
    matches!(
        key,
        "constructor"
            | "toString"
            | "toLocaleString"
            | "valueOf"
            | "hasOwnProperty"
            | "isPrototypeOf"
            | "propertyIsEnumerable"
            | "__proto__"
            | "__defineGetter__"
            | "__defineSetter__"
            | "__lookupGetter__"
            | "__lookupSetter__"
            | "toJSON"
    )
}

/// A lexical scope: bindings (`None` until initialised) and the enclosing scope.
struct Env<'a> {
    vars: RefCell<Vec<(&'a str, Option<V<'a>>)>>,
    parent: Option<Rc<Env<'a>>>,
}

impl<'a> Env<'a> {
    fn new(parent: Option<Rc<Env<'a>>>) -> Rc<Env<'a>> {
        Rc::new(Env { vars: RefCell::new(Vec::new()), parent })
    }

    fn declare(&self, name: &'a str, value: Option<V<'a>>) -> R<()> {
        let mut vars = self.vars.borrow_mut();
        if vars.iter().any(|(n, _)| *n == name) {
            return no(format!("`{name}` declared twice"));
        }
        vars.push((name, value));
        Ok(())
    }

    fn initialise(&self, name: &str, value: V<'a>) -> R<()> {
        let mut vars = self.vars.borrow_mut();
        match vars.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = Some(value);
                Ok(())
            }
            None => no(format!("`{name}` was not declared")),
        }
    }

    fn lookup(&self, name: &str) -> Option<R<V<'a>>> {
        let vars = self.vars.borrow();
        if let Some((_, value)) = vars.iter().find(|(n, _)| *n == name) {
            return Some(match value {
                Some(v) => Ok(v.clone()),
                None => no(format!("`{name}` read before it is initialised")),
            });
        }
        drop(vars);
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }
}

/// Where an expression is evaluated.
#[derive(Clone)]
struct Scope<'a> {
    env: Rc<Env<'a>>,
    this: V<'a>,
    /// The transpiled text of the module the code is in (function sources are slices of it).
    text: &'a str,
}

enum Flow<'a> {
    Normal,
    Return(V<'a>),
}

/// A project module, evaluated.
struct ModuleRec<'a> {
    env: Rc<Env<'a>>,
    exports: RefCell<Vec<(Rc<str>, Export<'a>)>>,
}

enum Export<'a> {
    Local(&'a str),
    Value(V<'a>),
}

impl<'a> ModuleRec<'a> {
    fn export(&self, name: &str) -> Option<R<V<'a>>> {
        let exports = self.exports.borrow();
        let (_, export) = exports.iter().find(|(n, _)| &**n == name)?;
        Some(match export {
            Export::Local(local) => self.env.lookup(local).unwrap_or_else(|| no("lost export")),
            Export::Value(v) => Ok(v.clone()),
        })
    }
}

struct StepRec<'a> {
    ctor: Option<StepCtor>,
    step_type: &'static str,
    options: V<'a>,
    next: Option<usize>,
    end: usize,
    when_true: Option<usize>,
    when_false: Option<usize>,
    branch: Option<usize>,
    output: Rc<Reference>,
}

#[derive(Default)]
struct Recording<'a> {
    steps: Vec<StepRec<'a>>,
    registered: Option<V<'a>>,
    problems: Vec<Value>,
}

/// One worker's direct recorder: the files it parsed and evaluated, and the reference tokens
/// minted so far.
pub struct Direct<'a> {
    alloc: &'a Allocator,
    modules: &'a Modules,
    loaded: HashMap<String, Option<Rc<ModuleRec<'a>>>>,
    loading: HashSet<String>,
    tokens: Vec<Value>,
    recording: Option<Recording<'a>>,
    depth: usize,
    work: usize,
    trace: bool,
}

impl<'a> Direct<'a> {
    pub fn new(alloc: &'a Allocator, modules: &'a Modules, trace: bool) -> Self {
        Direct {
            alloc,
            modules,
            loaded: HashMap::new(),
            loading: HashSet::new(),
            tokens: Vec::new(),
            recording: None,
            depth: 0,
            work: 0,
            trace,
        }
    }

    /// What the host function `function` of `js/core.js` would return for `file`, already
    /// parsed (tokens resolved); `None` when the file needs the engine.
    pub fn describe(&mut self, file: &str, function: &str, argument: &str) -> Option<Value> {
        let result = match function {
            "describeModule" => self.describe_module(file),
            "describeWorkflow" if argument == file => self.describe_workflow(file),
            _ => no(format!("{function} is not recorded directly")),
        };
        self.recording = None;
        self.depth = 0;
        self.work = 0;
        match result {
            Ok(value) => Some(value),
            Err(why) => {
                if self.trace {
                    let why = match why {
                        Bail::Unsupported(why) => why,
                        Bail::Short => "an optional chain outside a chain".into(),
                    };
                    eprintln!("para: {file} goes to the engine: {why}");
                }
                None
            }
        }
    }

    fn describe_module(&mut self, file: &str) -> R<Value> {
        let module = self.module(file)?;
        let mut names: Vec<Rc<str>> =
            module.exports.borrow().iter().map(|(name, _)| name.clone()).collect();
        names.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let mut exports = Vec::new();
        let mut default = V::Undef;
        for name in names {
            let value = module.export(&name).unwrap_or_else(|| no("lost export"))?;
            if &*name == "default" {
                default = value;
            } else {
                let lowered = self.lower(&value)?.unwrap_or(Value::Null);
                put(&mut exports, name, lowered);
            }
        }
        Ok(json!({
            "hasDefault": !matches!(default, V::Undef),
            "default": self.lower(&default)?.unwrap_or(Value::Null),
            "exports": Value::Object(exports.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        }))
    }

    fn describe_workflow(&mut self, file: &str) -> R<Value> {
        let module = self.module(file)?;
        let class = match module.export("default").transpose()? {
            None | Some(V::Undef) => return Ok(json!({ "shape": "missing" })),
            Some(V::Class(class)) => class,
            Some(_) => return no("the default export is not a workflow class"),
        };
        let workflow = V::This(self.instantiate(&class)?);
        let mut meta = Map::new();
        meta.insert("shape".into(), json!("workflow"));
        for field in ["id", "name", "description", "inputs", "defaultEnabled", "hidden"] {
            let value = self.get(&workflow, field)?;
            meta.insert(field.into(), self.lower(&value)?.unwrap_or(Value::Null));
        }
        self.recording = Some(Recording::default());
        let define = self.get(&workflow, "define")?;
        let handles = vec![
            V::Handle(Handle::Integration),
            V::Handle(Handle::Context),
            V::Handle(Handle::ConnectUser),
        ];
        self.call(&define, workflow.clone(), handles)?;
        let recording = self.recording.take().unwrap_or_default();
        let mut graph = self.describe_graph(recording)?;
        crate::lower::expand_tokens(&mut graph, &self.tokens);
        meta.insert("graph".into(), graph);
        let permissions = self.get(&workflow, "definePermissions")?;
        let permissions =
            self.call(&permissions, workflow.clone(), vec![V::Handle(Handle::ConnectUser)])?;
        meta.insert("permissions".into(), self.lower(&permissions)?.unwrap_or(Value::Null));
        Ok(Value::Object(meta))
    }

    /// core.js `describeGraph`, without creation sites.
    fn describe_graph(&mut self, mut recording: Recording<'a>) -> R<Value> {
        let mut registered = Map::new();
        match recording.registered.clone() {
            Some(V::Obj(object)) => {
                for (key, value) in &object.props {
                    match value {
                        V::Step(serial) => {
                            registered.insert(key.to_string(), json!(serial));
                        }
                        _ => recording.problems.push(json!({
                            "kind": "registeredNotAStep", "step": null, "detail": &**key,
                        })),
                    }
                }
            }
            None
            | Some(
                V::Undef
                | V::Null
                | V::Bool(_)
                | V::Num(_)
                | V::Str(_)
                | V::Fun(_)
                | V::Class(_)
                | V::Native(_),
            ) => recording
                .problems
                .push(json!({ "kind": "noRegister", "step": null, "detail": null })),
            Some(_) => return no("register() was given something other than an object of steps"),
        }
        let mut steps = Vec::with_capacity(recording.steps.len());
        for (serial, step) in recording.steps.iter().enumerate() {
            let mut out = Map::new();
            out.insert("serial".into(), json!(serial));
            out.insert("type".into(), json!(step.step_type));
            out.insert("site".into(), Value::Null);
            if let Some(options) = self.stringify(&step.options)? {
                out.insert("options".into(), options);
            }
            out.insert("next".into(), json!(step.next));
            out.insert("whenTrue".into(), json!(step.when_true));
            out.insert("whenFalse".into(), json!(step.when_false));
            out.insert("branch".into(), json!(step.branch));
            steps.push(Value::Object(out));
        }
        Ok(json!({
            "registered": registered,
            "steps": steps,
            "problems": recording.problems,
        }))
    }

    // ------------------------------------------------------------------------------- modules

    fn module(&mut self, file: &str) -> R<Rc<ModuleRec<'a>>> {
        if let Some(known) = self.loaded.get(file) {
            return known.clone().ok_or_else(|| {
                Bail::Unsupported(format!("it imports `{file}`, which is not recorded directly"))
            });
        }
        if !self.loading.insert(file.to_string()) {
            return no("an import cycle");
        }
        let result = self.evaluate_module(file);
        self.loading.remove(file);
        self.loaded.insert(file.to_string(), result.as_ref().ok().cloned());
        result
    }

    fn evaluate_module(&mut self, file: &str) -> R<Rc<ModuleRec<'a>>> {
        let modules: &'a Modules = self.modules;
        let Some((path, transpiled)) = modules.get_key_value(file) else {
            return no("not a project file");
        };
        let parsed = Parser::new(self.alloc, &transpiled.js, SourceType::mjs()).parse();
        if parsed.panicked || !parsed.diagnostics.is_empty() {
            return no("the transpiled file did not parse");
        }
        let program = &*self.alloc.alloc(parsed.program);
        let path: &'a str = path;
        let env = Env::new(None);
        let module = Rc::new(ModuleRec { env: env.clone(), exports: RefCell::new(Vec::new()) });
        // Imports first (their modules run before this one), then hoisting, then the body.
        for statement in &program.body {
            if let Statement::ImportDeclaration(import) = statement {
                let specifier = import.source.value.as_str();
                for spec in import.specifiers.iter().flatten() {
                    let (local, value) = match spec {
                        ImportDeclarationSpecifier::ImportSpecifier(s) => {
                            let name = export_name(&s.imported);
                            (s.local.name.as_str(), self.import(path, specifier, Some(name))?)
                        }
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(s) => {
                            (s.local.name.as_str(), self.import(path, specifier, Some("default"))?)
                        }
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(s) => {
                            (s.local.name.as_str(), self.import(path, specifier, None)?)
                        }
                    };
                    env.declare(local, Some(value))?;
                }
                if import.specifiers.is_none() {
                    self.import(path, specifier, None)?;
                }
            }
        }
        let scope = Scope { env: env.clone(), this: V::Undef, text: &transpiled.js };
        for statement in &program.body {
            match statement {
                Statement::ExportNamedDeclaration(e) => {
                    for s in &e.specifiers {
                        let ModuleExportName::IdentifierReference(local) = &s.local else {
                            return no("an unusual export");
                        };
                        module.exports.borrow_mut().push((
                            export_name(&s.exported).into(),
                            Export::Local(local.name.as_str()),
                        ));
                    }
                }
                Statement::ExportDeclaration(e) => {
                    self.hoist(std::slice::from_ref(&e.declaration), &scope)?;
                    for name in declared_names(&e.declaration)? {
                        module.exports.borrow_mut().push((name.into(), Export::Local(name)));
                    }
                }
                Statement::ExportDefaultDeclaration(e) => match &e.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(f) => {
                        let export = match &f.id {
                            Some(id) => {
                                let closure = self.function(f, &scope, id.name.as_str());
                                env.declare(id.name.as_str(), Some(closure))?;
                                Export::Local(id.name.as_str())
                            }
                            None => Export::Value(self.function(f, &scope, "default")),
                        };
                        module.exports.borrow_mut().push(("default".into(), export));
                    }
                    ExportDefaultDeclarationKind::ClassDeclaration(c) => {
                        if let Some(id) = &c.id {
                            env.declare(id.name.as_str(), None)?;
                        }
                    }
                    _ => {}
                },
                other => self.hoist_statement(other, &scope)?,
            }
        }
        for statement in &program.body {
            match statement {
                Statement::ImportDeclaration(_) | Statement::ExportNamedDeclaration(_) => {}
                Statement::ExportDeclaration(e) => {
                    self.declaration(&e.declaration, &scope)?;
                }
                Statement::ExportDefaultDeclaration(e) => match &e.declaration {
                    ExportDefaultDeclarationKind::FunctionDeclaration(_) => {}
                    ExportDefaultDeclarationKind::ClassDeclaration(c) => {
                        let class = self.class(c, &scope)?;
                        let export = match &c.id {
                            Some(id) => {
                                env.initialise(id.name.as_str(), class)?;
                                Export::Local(id.name.as_str())
                            }
                            None => Export::Value(class),
                        };
                        module.exports.borrow_mut().push(("default".into(), export));
                    }
                    ExportDefaultDeclarationKind::TSInterfaceDeclaration(_) => {}
                    other => {
                        let Some(expression) = other.as_expression() else {
                            return no("an unusual default export");
                        };
                        let value = self.eval_named(expression, &scope, "default")?;
                        module.exports.borrow_mut().push(("default".into(), Export::Value(value)));
                    }
                },
                other => {
                    if let Flow::Return(_) = self.statement(other, &scope)? {
                        return no("a return at module level");
                    }
                }
            }
        }
        Ok(module)
    }

    fn import(&mut self, file: &str, specifier: &str, name: Option<&str>) -> R<V<'a>> {
        if specifier.starts_with('.') {
            let Some(target) = resolve_relative(self.modules, file, specifier) else {
                return no(format!("`{specifier}` does not resolve"));
            };
            let module = self.module(&target)?;
            return match name {
                None => Ok(V::Namespace(module)),
                Some(name) => module
                    .export(name)
                    .unwrap_or_else(|| no(format!("`{target}` has no export `{name}`"))),
            };
        }
        let exported = match (specifier, name) {
            ("@useparagon/core/operator", None) => Some(V::Handle(Handle::Operators)),
            (_, None) => None,
            ("@useparagon/core", Some(name)) => match name {
                "createInputs" => Some(V::Native(Native::CreateInputs("input"))),
                "createConfigInputs" => Some(V::Native(Native::CreateInputs("configInput"))),
                "credentials" => Some(credentials()),
                "Operators" => Some(V::Handle(Handle::Operators)),
                "Workflow" => Some(V::Native(Native::Workflow)),
                other => StepCtor::of(other).map(|c| V::Native(Native::Step(c))),
            },
            ("@useparagon/core/integration", Some("createConfigInputs")) => {
                Some(V::Native(Native::CreateInputs("configInput")))
            }
            ("@useparagon/core/integration", Some("credentials")) => Some(credentials()),
            ("@useparagon/core/operator", Some(name)) => operator(name),
            (specifier, Some("createInputs"))
                if specifier == "@useparagon/core/inputs"
                    || crate::modules::virtual_module(specifier)
                        == Some(crate::modules::INPUTS) =>
            {
                Some(V::Native(Native::CreateInputs("input")))
            }
            _ => None,
        };
        exported.ok_or_else(|| {
            Bail::Unsupported(format!("`{}` from `{specifier}`", name.unwrap_or("*")))
        })
    }

    // ---------------------------------------------------------------------------- statements

    /// Declares a block's lexical names before it runs; function declarations are created.
    fn hoist(&mut self, declarations: &'a [Declaration<'a>], scope: &Scope<'a>) -> R<()> {
        for declaration in declarations {
            match declaration {
                Declaration::VariableDeclaration(d) => {
                    if d.kind == VariableDeclarationKind::Var {
                        return no("`var`");
                    }
                    for declarator in &d.declarations {
                        let BindingPattern::BindingIdentifier(id) = &declarator.id else {
                            return no("a destructuring declaration");
                        };
                        scope.env.declare(id.name.as_str(), None)?;
                    }
                }
                Declaration::FunctionDeclaration(f) => {
                    let Some(id) = &f.id else { return no("a function without a name") };
                    let closure = self.function(f, scope, id.name.as_str());
                    scope.env.declare(id.name.as_str(), Some(closure))?;
                }
                Declaration::ClassDeclaration(c) => {
                    let Some(id) = &c.id else { return no("a class without a name") };
                    scope.env.declare(id.name.as_str(), None)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn hoist_statement(&mut self, statement: &'a Statement<'a>, scope: &Scope<'a>) -> R<()> {
        if let Some(declaration) = statement.as_declaration() {
            self.hoist(std::slice::from_ref(declaration), scope)?;
        }
        Ok(())
    }

    fn block(&mut self, statements: &'a [Statement<'a>], scope: &Scope<'a>) -> R<Flow<'a>> {
        for statement in statements {
            self.hoist_statement(statement, scope)?;
        }
        for statement in statements {
            if let Flow::Return(v) = self.statement(statement, scope)? {
                return Ok(Flow::Return(v));
            }
        }
        Ok(Flow::Normal)
    }

    fn declaration(&mut self, declaration: &'a Declaration<'a>, scope: &Scope<'a>) -> R<()> {
        match declaration {
            Declaration::VariableDeclaration(d) => {
                for declarator in &d.declarations {
                    let BindingPattern::BindingIdentifier(id) = &declarator.id else {
                        return no("a destructuring declaration");
                    };
                    let name = id.name.as_str();
                    let value = match &declarator.init {
                        Some(init) => self.eval_named(init, scope, name)?,
                        None => V::Undef,
                    };
                    scope.env.initialise(name, value)?;
                }
                Ok(())
            }
            Declaration::FunctionDeclaration(_) => Ok(()),
            Declaration::ClassDeclaration(c) => {
                let class = self.class(c, scope)?;
                let Some(id) = &c.id else { return no("a class without a name") };
                scope.env.initialise(id.name.as_str(), class)
            }
            Declaration::TSTypeAliasDeclaration(_) | Declaration::TSInterfaceDeclaration(_) => {
                Ok(())
            }
            _ => no("a TypeScript declaration with a run-time value"),
        }
    }

    fn statement(&mut self, statement: &'a Statement<'a>, scope: &Scope<'a>) -> R<Flow<'a>> {
        if let Some(declaration) = statement.as_declaration() {
            self.declaration(declaration, scope)?;
            return Ok(Flow::Normal);
        }
        match statement {
            Statement::ExpressionStatement(s) => {
                self.eval(&s.expression, scope)?;
                Ok(Flow::Normal)
            }
            Statement::ReturnStatement(s) => Ok(Flow::Return(match &s.argument {
                Some(e) => self.eval(e, scope)?,
                None => V::Undef,
            })),
            Statement::IfStatement(s) => {
                let test = self.eval(&s.test, scope)?;
                if truthy(&test) {
                    self.statement(&s.consequent, scope)
                } else if let Some(alternate) = &s.alternate {
                    self.statement(alternate, scope)
                } else {
                    Ok(Flow::Normal)
                }
            }
            Statement::BlockStatement(b) => {
                let inner = Scope {
                    env: Env::new(Some(scope.env.clone())),
                    this: scope.this.clone(),
                    text: scope.text,
                };
                self.block(&b.body, &inner)
            }
            Statement::EmptyStatement(_) => Ok(Flow::Normal),
            _ => no("a statement other than a declaration, expression, `if` or `return`"),
        }
    }

    // --------------------------------------------------------------------------- functions

    fn function(&mut self, f: &'a Function<'a>, scope: &Scope<'a>, name: &str) -> V<'a> {
        let name = f.id.as_ref().map_or(name, |id| id.name.as_str());
        let source = scope.text.get(f.span().start as usize..f.span().end as usize);
        V::Fun(Rc::new(Closure {
            name: name.into(),
            params: &f.params,
            body: match &f.body {
                Some(body) => Body::Block(body),
                None => return V::Undef,
            },
            env: scope.env.clone(),
            this: None,
            source,
            callable: !f.r#async && !f.generator,
            text: scope.text,
        }))
    }

    fn call(&mut self, callee: &V<'a>, this: V<'a>, args: Vec<V<'a>>) -> R<V<'a>> {
        match callee {
            V::Fun(closure) => self.call_closure(closure, this, args),
            V::Native(native) => self.call_native(native.clone(), args),
            _ => no("a call of something that is not a function para models"),
        }
    }

    fn call_closure(
        &mut self,
        closure: &Rc<Closure<'a>>,
        this: V<'a>,
        args: Vec<V<'a>>,
    ) -> R<V<'a>> {
        if !closure.callable {
            return no("a call of an async or generator function");
        }
        if self.depth >= MAX_DEPTH {
            return no("calls nested too deeply");
        }
        if closure.params.rest.is_some() {
            return no("a rest parameter");
        }
        self.depth += 1;
        let env = Env::new(Some(closure.env.clone()));
        let scope = Scope { env, this: closure.this.clone().unwrap_or(this), text: closure.text };
        let result = (|| {
            let mut args = args.into_iter();
            for param in &closure.params.items {
                let BindingPattern::BindingIdentifier(id) = &param.pattern else {
                    return no("a destructured parameter");
                };
                let name = id.name.as_str();
                let mut value = args.next().unwrap_or(V::Undef);
                if let (V::Undef, Some(init)) = (&value, &param.initializer) {
                    value = self.eval_named(init, &scope, name)?;
                }
                scope.env.declare(name, Some(value))?;
            }
            match closure.body {
                Body::Expr(e) => self.eval(e, &scope),
                Body::Block(b) => match self.block(&b.statements, &scope)? {
                    Flow::Return(v) => Ok(v),
                    Flow::Normal => Ok(V::Undef),
                },
            }
        })();
        self.depth -= 1;
        result
    }

    fn call_native(&mut self, native: Native, args: Vec<V<'a>>) -> R<V<'a>> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(V::Undef);
        match native {
            Native::CreateInputs(kind) => self.create_inputs(&arg(0), kind),
            Native::Operator(op, arity) => {
                let operands: Vec<V<'a>> = args.iter().take(arity).cloned().collect();
                Ok(plain(vec![
                    ("operator".into(), V::Str(op.into())),
                    ("operands".into(), V::Arr(Rc::new(operands))),
                ]))
            }
            Native::And | Native::Or => {
                let op = if matches!(native, Native::And) { "$and" } else { "$or" };
                Ok(plain(vec![
                    ("operator".into(), V::Str(op.into())),
                    ("operands".into(), V::Arr(Rc::new(args))),
                ]))
            }
            Native::GetInput => self.get_input(&arg(0)),
            Native::GetSecret => {
                let name = match arg(0) {
                    V::Str(s) => s.to_string(),
                    V::Num(n) => js_number(n)?,
                    _ => return no("getEnvironmentSecret() of something other than a name"),
                };
                Ok(reference(json!({ "kind": "secret", "name": name, "path": [] })))
            }
            Native::Register => {
                let steps = arg(0);
                if let Some(recording) = &mut self.recording {
                    recording.registered = Some(steps.clone());
                }
                Ok(steps)
            }
            Native::Define => Ok(plain(Vec::new())),
            Native::DefinePermissions => Ok(V::Undef),
            Native::StepMethod(method, serial) => self.step_method(method, serial, arg(0)),
            Native::Action(step_type, name) => {
                let mut props = self.spread(&arg(1))?;
                let field = if step_type == "TRIGGER/ACTION" { "trigger" } else { "action" };
                put(&mut props, field.into(), V::Str(name));
                put(&mut props, "parameters".into(), or_empty(arg(0)));
                let serial = self.new_step(None, step_type, plain(props))?;
                Ok(V::Step(serial))
            }
            Native::WithTrigger => {
                let name = match arg(0) {
                    V::Native(Native::Action("TRIGGER/ACTION", name)) => name,
                    V::Str(name) => name,
                    _ => return no("withTrigger() of something other than a trigger"),
                };
                let rest = args.into_iter().skip(1).collect();
                self.call_native(Native::Action("TRIGGER/ACTION", name), rest)
            }
            Native::Step(_) | Native::Workflow => no("a class called without `new`"),
        }
    }

    fn step_method(&mut self, method: &'static str, serial: usize, next: V<'a>) -> R<V<'a>> {
        let Some(recording) = self.recording.as_mut() else {
            return no("a step used outside define()");
        };
        let ctor = recording.steps[serial].ctor;
        let problem = |recording: &mut Recording<'a>, detail: &str| {
            recording
                .problems
                .push(json!({ "kind": "notAStep", "step": serial, "detail": detail }));
        };
        match method {
            "nextStep" | "next" => {
                let V::Step(next) = next else {
                    problem(recording, "nextStep");
                    return Ok(V::Step(serial));
                };
                let end = recording.steps[serial].end;
                if let Some(linked) = recording.steps[end].next
                    && linked != next
                {
                    recording
                        .problems
                        .push(json!({ "kind": "relinked", "step": end, "detail": next }));
                }
                recording.steps[end].next = Some(next);
                recording.steps[serial].end = recording.steps[next].end;
                Ok(V::Step(serial))
            }
            "whenTrue" | "whenFalse" if ctor == Some(StepCtor::Conditional) => {
                match next {
                    V::Step(next) => {
                        let step = &mut recording.steps[serial];
                        if method == "whenTrue" {
                            step.when_true = Some(next);
                        } else {
                            step.when_false = Some(next);
                        }
                    }
                    _ => problem(recording, method),
                }
                Ok(V::Step(serial))
            }
            "branch" if ctor == Some(StepCtor::FanOut) => {
                match next {
                    V::Step(next) => recording.steps[serial].branch = Some(next),
                    _ => problem(recording, "branch"),
                }
                Ok(V::Step(serial))
            }
            _ => no(format!("`{method}` of a step that has none")),
        }
    }

    fn new_step(
        &mut self,
        ctor: Option<StepCtor>,
        step_type: &'static str,
        options: V<'a>,
    ) -> R<usize> {
        let Some(recording) = &mut self.recording else {
            return no("a step created outside define()");
        };
        let serial = recording.steps.len();
        let output = Rc::new(Reference {
            base: Rc::new(json!({ "kind": "step", "step": serial, "path": [] })),
            path: Vec::new(),
        });
        recording.steps.push(StepRec {
            ctor,
            step_type,
            options,
            next: None,
            end: serial,
            when_true: None,
            when_false: None,
            branch: None,
            output,
        });
        Ok(serial)
    }

    fn construct(&mut self, callee: &V<'a>, args: Vec<V<'a>>) -> R<V<'a>> {
        let V::Native(Native::Step(ctor)) = callee else {
            return no("`new` of something other than a step");
        };
        let ctor = *ctor;
        let arg = |i: usize| args.get(i).cloned().unwrap_or(V::Undef);
        let step_type = ctor.step_type();
        let serial = match ctor {
            StepCtor::Event => {
                let mut props = self.spread(&arg(1))?;
                put(&mut props, "event".into(), arg(0));
                self.new_step(Some(ctor), step_type, plain(props))?
            }
            StepCtor::Function => {
                let mut props = self.spread(&arg(0))?;
                if let Some(slot) = props.iter_mut().find(|(k, _)| &**k == "code") {
                    match &slot.1 {
                        V::Fun(f) => {
                            let Some(source) = f.source else {
                                return no("a method as a function step's code");
                            };
                            let name =
                                if f.name.is_empty() { V::Null } else { V::Str(f.name.clone()) };
                            let described = plain(vec![
                                ("name".into(), name),
                                ("source".into(), V::Str(source.into())),
                            ]);
                            slot.1 = plain(vec![(FUNCTION.into(), described)]);
                        }
                        V::Native(_) | V::Class(_) => return no("unusual function step code"),
                        _ => {}
                    }
                }
                self.new_step(Some(ctor), step_type, plain(props))?
            }
            StepCtor::Request | StepCtor::IntegrationRequest => {
                let serial = self.new_step(Some(ctor), step_type, plain(Vec::new()))?;
                let mut props = self.spread(&arg(0))?;
                let page_token = reference(json!({ "kind": "pageToken", "path": [] }));
                for field in ["url", "params", "headers", "body", "pagination"] {
                    let Some(index) = props.iter().position(|(k, _)| &**k == field) else {
                        continue;
                    };
                    let value = props[index].1.clone();
                    if matches!(value, V::Fun(_) | V::Native(_) | V::Class(_)) {
                        let argument = if field == "pagination" {
                            V::Step(serial)
                        } else {
                            page_token.clone()
                        };
                        props[index].1 = self.call(&value, V::Undef, vec![argument])?;
                    }
                }
                if let Some(recording) = &mut self.recording {
                    recording.steps[serial].options = plain(props);
                }
                serial
            }
            _ => self.new_step(Some(ctor), step_type, or_empty(arg(0)))?,
        };
        Ok(V::Step(serial))
    }

    // --------------------------------------------------------------------------- classes

    fn class(&mut self, class: &'a Class<'a>, scope: &Scope<'a>) -> R<V<'a>> {
        let Some(heritage) = &class.heritage else {
            return no("a class that does not extend Workflow");
        };
        if !matches!(self.eval(&heritage.expression, scope)?, V::Native(Native::Workflow)) {
            return no("a class that does not extend Workflow");
        }
        if !class.decorators.is_empty() {
            return no("a decorated class");
        }
        for element in &class.body.body {
            match element {
                ClassElement::MethodDefinition(m) => {
                    if m.kind != MethodDefinitionKind::Method
                        || m.r#static
                        || m.computed
                        || static_key(&m.key).is_none()
                    {
                        return no("a constructor, accessor, static or computed method");
                    }
                }
                ClassElement::PropertyDefinition(p) => {
                    if p.r#static || p.computed || static_key(&p.key).is_none() {
                        return no("a static or computed class field");
                    }
                }
                ClassElement::TSIndexSignature(_) => {}
                _ => return no("a class element other than fields and methods"),
            }
        }
        Ok(V::Class(Rc::new(ClassDef { class, env: scope.env.clone(), text: scope.text })))
    }

    fn instantiate(&mut self, class: &Rc<ClassDef<'a>>) -> R<Rc<Instance<'a>>> {
        let instance = Rc::new(Instance { class: class.clone(), fields: RefCell::new(Vec::new()) });
        let scope = Scope {
            env: Env::new(Some(class.env.clone())),
            this: V::This(instance.clone()),
            text: class.text,
        };
        for element in &class.class.body.body {
            if let ClassElement::PropertyDefinition(p) = element {
                if p.declare {
                    continue;
                }
                let key = static_key(&p.key).unwrap_or_default();
                let value = match &p.value {
                    Some(e) => self.eval_named(e, &scope, &key)?,
                    None => V::Undef,
                };
                put(&mut instance.fields.borrow_mut(), key.into(), value);
            }
        }
        Ok(instance)
    }

    fn method(&self, instance: &Instance<'a>, name: &str) -> Option<V<'a>> {
        instance.class.class.body.body.iter().find_map(|element| match element {
            ClassElement::MethodDefinition(m) if static_key(&m.key).as_deref() == Some(name) => {
                let f = &m.value;
                Some(V::Fun(Rc::new(Closure {
                    name: name.into(),
                    params: &f.params,
                    body: Body::Block(f.body.as_ref()?),
                    env: instance.class.env.clone(),
                    this: None,
                    source: None,
                    callable: !f.r#async && !f.generator,
                    text: instance.class.text,
                })))
            }
            _ => None,
        })
    }

    // ------------------------------------------------------------------------ expressions

    fn eval_named(&mut self, e: &'a Expression<'a>, scope: &Scope<'a>, name: &str) -> R<V<'a>> {
        match e {
            Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => {
                self.closure(e, scope, name)
            }
            Expression::ParenthesizedExpression(p) => self.eval_named(&p.expression, scope, name),
            _ => self.eval(e, scope),
        }
    }

    fn closure(&mut self, e: &'a Expression<'a>, scope: &Scope<'a>, name: &str) -> R<V<'a>> {
        match e {
            Expression::FunctionExpression(f) => Ok(self.function(f, scope, name)),
            Expression::ArrowFunctionExpression(a) => {
                let body = match &a.body {
                    ArrowFunctionBody::FunctionBody(b) => Body::Block(b),
                    other => match other.as_expression() {
                        Some(e) => Body::Expr(e),
                        None => return no("an unusual arrow function"),
                    },
                };
                Ok(V::Fun(Rc::new(Closure {
                    name: name.into(),
                    params: &a.params,
                    body,
                    env: scope.env.clone(),
                    this: Some(scope.this.clone()),
                    source: scope.text.get(a.span.start as usize..a.span.end as usize),
                    callable: !a.r#async,
                    text: scope.text,
                })))
            }
            _ => self.eval(e, scope),
        }
    }

    /// Counts work; gives up past [`MAX_WORK`].
    fn tick(&mut self) -> R<()> {
        self.work += 1;
        if self.work > MAX_WORK {
            return no("more work than a declaration needs");
        }
        Ok(())
    }

    fn eval(&mut self, e: &'a Expression<'a>, scope: &Scope<'a>) -> R<V<'a>> {
        self.tick()?;
        match e {
            Expression::BooleanLiteral(b) => Ok(V::Bool(b.value)),
            Expression::NullLiteral(_) => Ok(V::Null),
            Expression::NumericLiteral(n) => Ok(V::Num(n.value)),
            Expression::StringLiteral(s) => {
                if s.lone_surrogates {
                    return no("a string with a lone surrogate");
                }
                text(s.value.as_str())
            }
            Expression::TemplateLiteral(t) => {
                let mut out = String::new();
                for (i, quasi) in t.quasis.iter().enumerate() {
                    let Some(cooked) = &quasi.value.cooked else {
                        return no("a template with an invalid escape");
                    };
                    if quasi.lone_surrogates {
                        return no("a string with a lone surrogate");
                    }
                    check_text(cooked.as_str())?;
                    out.push_str(cooked.as_str());
                    if let Some(e) = t.expressions.get(i) {
                        let v = self.eval(e, scope)?;
                        out.push_str(&self.string_of(&v)?);
                    }
                    if out.len() > MAX_STRING {
                        return no("a very long string");
                    }
                }
                Ok(V::Str(out.into()))
            }
            Expression::Identifier(id) => self.identifier(id.name.as_str(), scope),
            Expression::ThisExpression(_) => Ok(scope.this.clone()),
            Expression::ParenthesizedExpression(p) => self.eval(&p.expression, scope),
            Expression::ArrayExpression(a) => {
                let mut items = Vec::with_capacity(a.elements.len());
                for element in &a.elements {
                    match element {
                        ArrayExpressionElement::SpreadElement(_) => return no("an array spread"),
                        ArrayExpressionElement::Elision(_) => return no("an array hole"),
                        other => match other.as_expression() {
                            Some(e) => items.push(self.eval(e, scope)?),
                            None => return no("an unusual array element"),
                        },
                    }
                }
                Ok(V::Arr(Rc::new(items)))
            }
            Expression::ObjectExpression(o) => {
                let mut props: Props<'a> = Vec::with_capacity(o.properties.len());
                for property in &o.properties {
                    match property {
                        ObjectPropertyKind::SpreadProperty(s) => {
                            let v = self.eval(&s.argument, scope)?;
                            for (k, v) in self.spread(&v)? {
                                put(&mut props, k, v);
                            }
                        }
                        ObjectPropertyKind::ObjectProperty(p) => {
                            if p.kind != PropertyKind::Init {
                                return no("a getter or setter");
                            }
                            let key: Rc<str> = match (&p.key, p.computed) {
                                (key, false) => match static_key(key) {
                                    Some(k) => k.into(),
                                    None => return no("an unusual property key"),
                                },
                                (key, true) => {
                                    let Some(e) = key.as_expression() else {
                                        return no("an unusual property key");
                                    };
                                    let v = self.eval(e, scope)?;
                                    match v {
                                        V::Str(s) => s,
                                        V::Num(n) => js_number(n)?.into(),
                                        _ => return no("a computed key that is not a string"),
                                    }
                                }
                            };
                            if &*key == "__proto__" {
                                return no("a `__proto__` key");
                            }
                            let value = if p.method {
                                let Expression::FunctionExpression(f) = &p.value else {
                                    return no("an unusual method");
                                };
                                let mut closure = self.function(f, scope, &key);
                                if let V::Fun(c) = &mut closure
                                    && let Some(c) = Rc::get_mut(c)
                                {
                                    c.source = None;
                                }
                                closure
                            } else {
                                self.eval_named(&p.value, scope, &key)?
                            };
                            put(&mut props, key, value);
                        }
                    }
                }
                Ok(plain(props))
            }
            Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => {
                self.closure(e, scope, "")
            }
            Expression::ClassExpression(c) => self.class(c, scope),
            Expression::StaticMemberExpression(m) => {
                let key = Key::Name(m.property.name.as_str());
                Ok(self.member(&m.object, m.optional, key, scope)?.1)
            }
            Expression::ComputedMemberExpression(m) => {
                let key = Key::Computed(&m.expression);
                Ok(self.member(&m.object, m.optional, key, scope)?.1)
            }
            Expression::ChainExpression(c) => {
                let result = match &c.expression {
                    ChainElement::CallExpression(call) => self.eval_call(call, scope),
                    ChainElement::StaticMemberExpression(m) => {
                        let key = Key::Name(m.property.name.as_str());
                        self.member(&m.object, m.optional, key, scope).map(|(_, v)| v)
                    }
                    ChainElement::ComputedMemberExpression(m) => {
                        let key = Key::Computed(&m.expression);
                        self.member(&m.object, m.optional, key, scope).map(|(_, v)| v)
                    }
                    _ => no("an unusual optional chain"),
                };
                match result {
                    Err(Bail::Short) => Ok(V::Undef),
                    other => other,
                }
            }
            Expression::CallExpression(call) => self.eval_call(call, scope),
            Expression::NewExpression(n) => {
                let callee = self.eval(&n.callee, scope)?;
                let args = self.arguments(&n.arguments, scope)?;
                self.construct(&callee, args)
            }
            Expression::UnaryExpression(u) => {
                let v = self.eval(&u.argument, scope)?;
                match (u.operator, v) {
                    (UnaryOperator::UnaryNegation, V::Num(n)) => Ok(V::Num(-n)),
                    (UnaryOperator::LogicalNot, v) => Ok(V::Bool(!truthy(&v))),
                    _ => no("a unary operator para does not model"),
                }
            }
            Expression::LogicalExpression(l) => {
                let left = self.eval(&l.left, scope)?;
                let take_left = match l.operator {
                    LogicalOperator::Coalesce => !matches!(left, V::Undef | V::Null),
                    LogicalOperator::Or => truthy(&left),
                    LogicalOperator::And => !truthy(&left),
                };
                if take_left { Ok(left) } else { self.eval(&l.right, scope) }
            }
            Expression::ConditionalExpression(c) => {
                let test = self.eval(&c.test, scope)?;
                if truthy(&test) {
                    self.eval(&c.consequent, scope)
                } else {
                    self.eval(&c.alternate, scope)
                }
            }
            Expression::BinaryExpression(b) => {
                let left = self.eval(&b.left, scope)?;
                let right = self.eval(&b.right, scope)?;
                self.binary(b.operator, left, right)
            }
            _ => no("an expression para does not model"),
        }
    }

    /// `object.key` or `object[key]` (with `?.` when `optional`): the object and the value read.
    fn member(
        &mut self,
        object: &'a Expression<'a>,
        optional: bool,
        key: Key<'a>,
        scope: &Scope<'a>,
    ) -> R<(V<'a>, V<'a>)> {
        let object = self.eval(object, scope)?;
        if optional && matches!(object, V::Undef | V::Null) {
            return Err(Bail::Short);
        }
        let value = match key {
            Key::Name(name) => self.get(&object, name)?,
            Key::Computed(e) => {
                let key = self.eval(e, scope)?;
                let key = self.property_key(&key)?;
                self.get(&object, &key)?
            }
        };
        Ok((object, value))
    }

    fn eval_call(
        &mut self,
        call: &'a oxc::ast::ast::CallExpression<'a>,
        scope: &Scope<'a>,
    ) -> R<V<'a>> {
        let (this, callee) = match &call.callee {
            Expression::StaticMemberExpression(m) => {
                self.member(&m.object, m.optional, Key::Name(m.property.name.as_str()), scope)?
            }
            Expression::ComputedMemberExpression(m) => {
                self.member(&m.object, m.optional, Key::Computed(&m.expression), scope)?
            }
            Expression::Super(_) => return no("`super()`"),
            other => (V::Undef, self.eval(other, scope)?),
        };
        if call.optional && matches!(callee, V::Undef | V::Null) {
            return Err(Bail::Short);
        }
        let args = self.arguments(&call.arguments, scope)?;
        self.call(&callee, this, args)
    }

    fn arguments(&mut self, args: &'a [Argument<'a>], scope: &Scope<'a>) -> R<Vec<V<'a>>> {
        let mut out = Vec::with_capacity(args.len());
        for arg in args {
            match arg.as_expression() {
                Some(e) => out.push(self.eval(e, scope)?),
                None => return no("a spread argument"),
            }
        }
        Ok(out)
    }

    fn identifier(&mut self, name: &str, scope: &Scope<'a>) -> R<V<'a>> {
        if let Some(found) = scope.env.lookup(name) {
            return found;
        }
        match name {
            "undefined" => Ok(V::Undef),
            "NaN" => Ok(V::Num(f64::NAN)),
            "Infinity" => Ok(V::Num(f64::INFINITY)),
            _ => no(format!("the global `{name}`")),
        }
    }

    fn property_key(&mut self, key: &V<'a>) -> R<String> {
        match key {
            V::Str(s) => Ok(s.to_string()),
            V::Num(n) => js_number(*n),
            _ => no("a computed property that is not a string or number"),
        }
    }

    fn binary(&mut self, op: BinaryOperator, left: V<'a>, right: V<'a>) -> R<V<'a>> {
        use BinaryOperator as B;
        match (op, &left, &right) {
            (B::Addition, V::Num(a), V::Num(b)) => Ok(V::Num(a + b)),
            (B::Addition, _, _) => {
                let l = self.primitive(&left)?;
                let r = self.primitive(&right)?;
                if !matches!(l, V::Str(_)) && !matches!(r, V::Str(_)) {
                    return no("`+` of values that are not strings or numbers");
                }
                let mut out = self.string_of(&l)?;
                out.push_str(&self.string_of(&r)?);
                if out.len() > MAX_STRING {
                    return no("a very long string");
                }
                Ok(V::Str(out.into()))
            }
            (B::Subtraction, V::Num(a), V::Num(b)) => Ok(V::Num(a - b)),
            (B::Multiplication, V::Num(a), V::Num(b)) => Ok(V::Num(a * b)),
            (B::Division, V::Num(a), V::Num(b)) => Ok(V::Num(a / b)),
            (B::LessThan, V::Num(a), V::Num(b)) => Ok(V::Bool(a < b)),
            (B::LessEqualThan, V::Num(a), V::Num(b)) => Ok(V::Bool(a <= b)),
            (B::GreaterThan, V::Num(a), V::Num(b)) => Ok(V::Bool(a > b)),
            (B::GreaterEqualThan, V::Num(a), V::Num(b)) => Ok(V::Bool(a >= b)),
            (B::StrictEquality | B::StrictInequality, _, _) => {
                let same = match (&left, &right) {
                    (V::Undef, V::Undef) | (V::Null, V::Null) => true,
                    (V::Bool(a), V::Bool(b)) => a == b,
                    (V::Num(a), V::Num(b)) => a == b,
                    (V::Str(a), V::Str(b)) => a == b,
                    (a, b) if is_primitive(a) || is_primitive(b) => false,
                    _ => return no("`===` of two objects"),
                };
                Ok(V::Bool(same == (op == B::StrictEquality)))
            }
            _ => no("an operator para does not model"),
        }
    }

    /// ToPrimitive for `+` and templates: references and inputs become tokens.
    fn primitive(&mut self, v: &V<'a>) -> R<V<'a>> {
        match v {
            V::Undef | V::Null | V::Bool(_) | V::Num(_) | V::Str(_) => Ok(v.clone()),
            V::Ref(r) => Ok(V::Str(self.mint(r, OPEN).into())),
            V::Obj(o) => match &o.input {
                Some(meta) if meta.kind == "input" || meta.kind == "configInput" => {
                    let mut descriptor = Map::new();
                    descriptor.insert("kind".into(), json!(meta.kind));
                    match o.props.iter().find(|(k, _)| &**k == "id").map(|(_, v)| v) {
                        None | Some(V::Undef) => {}
                        Some(V::Null) => {
                            descriptor.insert("id".into(), Value::Null);
                        }
                        Some(V::Str(s)) => {
                            descriptor.insert("id".into(), json!(&**s));
                        }
                        Some(_) => return no("an input whose id is not a string"),
                    }
                    descriptor.insert("key".into(), json!(meta.key.as_deref()));
                    descriptor.insert("path".into(), json!([]));
                    let token = self.tokens.len();
                    self.tokens.push(Value::Object(descriptor));
                    Ok(V::Str(format!("{OPEN}{token}{CLOSE}").into()))
                }
                _ => no("an object converted to a string"),
            },
            _ => no("a value converted to a string"),
        }
    }

    fn string_of(&mut self, v: &V<'a>) -> R<String> {
        Ok(match self.primitive(v)? {
            V::Str(s) => s.to_string(),
            V::Num(n) => js_number(n)?,
            V::Bool(b) => b.to_string(),
            V::Null => "null".into(),
            V::Undef => "undefined".into(),
            _ => return no("a value converted to a string"),
        })
    }

    /// Mints a token for a reference (core.js `mint`).
    fn mint(&mut self, r: &Reference, prefix: char) -> String {
        let token = self.tokens.len();
        self.tokens.push(descriptor(r));
        format!("{prefix}{token}{CLOSE}")
    }

    // --------------------------------------------------------------------- property reads

    fn get(&mut self, object: &V<'a>, key: &str) -> R<V<'a>> {
        match object {
            V::Obj(o) => match o.props.iter().find(|(k, _)| &**k == key) {
                Some((_, v)) => Ok(v.clone()),
                None if inherited(key) => no(format!("`{key}` of an object")),
                None => Ok(V::Undef),
            },
            V::Arr(items) => match key {
                "length" => Ok(V::Num(items.len() as f64)),
                _ => match array_index(key) {
                    Some(i) => Ok(items.get(i).cloned().unwrap_or(V::Undef)),
                    None => no(format!("`{key}` of an array")),
                },
            },
            V::Ref(r) => match key {
                "then" => Ok(V::Undef),
                "toString" | "valueOf" | "toJSON" => no(format!("`{key}` of a reference")),
                _ => {
                    let mut path = r.path.clone();
                    path.push(key.into());
                    Ok(V::Ref(Rc::new(Reference { base: r.base.clone(), path })))
                }
            },
            V::Step(serial) => match key {
                "output" => {
                    let Some(recording) = self.recording.as_ref() else {
                        return no("a step used outside define()");
                    };
                    Ok(V::Ref(recording.steps[*serial].output.clone()))
                }
                "nextStep" | "next" | "whenTrue" | "whenFalse" | "branch" => {
                    let method = match key {
                        "nextStep" => "nextStep",
                        "next" => "next",
                        "whenTrue" => "whenTrue",
                        "whenFalse" => "whenFalse",
                        _ => "branch",
                    };
                    Ok(V::Native(Native::StepMethod(method, *serial)))
                }
                _ => no(format!("`{key}` of a step")),
            },
            V::Fun(f) if key == "name" => Ok(V::Str(f.name.clone())),
            V::This(instance) => {
                if let Some((_, v)) = instance.fields.borrow().iter().find(|(k, _)| &**k == key) {
                    return Ok(v.clone());
                }
                if let Some(method) = self.method(instance, key) {
                    return Ok(method);
                }
                match key {
                    "register" => Ok(V::Native(Native::Register)),
                    "define" => Ok(V::Native(Native::Define)),
                    "definePermissions" => Ok(V::Native(Native::DefinePermissions)),
                    k if inherited(k) => no(format!("`{key}` of a workflow")),
                    _ => Ok(V::Undef),
                }
            }
            V::Handle(handle) => match handle {
                Handle::Integration => Ok(match key {
                    "actions" => V::Handle(Handle::Actions),
                    "triggers" => V::Handle(Handle::Triggers),
                    "withTrigger" => V::Native(Native::WithTrigger),
                    _ => V::Undef,
                }),
                Handle::Actions => {
                    Ok(V::Native(Native::Action("ACTION/INTEGRATION_ACTION", key.into())))
                }
                Handle::Triggers => Ok(V::Native(Native::Action("TRIGGER/ACTION", key.into()))),
                Handle::Context => match key {
                    "getInput" => Ok(V::Native(Native::GetInput)),
                    "getEnvironmentSecret" => Ok(V::Native(Native::GetSecret)),
                    k if inherited(k) => no(format!("`{key}` of the context")),
                    _ => Ok(V::Undef),
                },
                Handle::ConnectUser => Ok(if key == "meta" {
                    reference(json!({ "kind": "persona", "path": [] }))
                } else {
                    reference(json!({ "kind": "user", "field": key, "path": [] }))
                }),
                Handle::Operators => match operator(key) {
                    Some(op) => Ok(op),
                    None if inherited(key) => no(format!("`{key}` of the operators")),
                    None => Ok(V::Undef),
                },
            },
            V::Namespace(module) => module.export(key).unwrap_or(Ok(V::Undef)),
            V::Undef | V::Null => no(format!(
                "`{key}` of {}",
                if matches!(object, V::Null) { "null" } else { "undefined" }
            )),
            _ => no(format!("`{key}` of a value para does not model")),
        }
    }

    /// The own enumerable properties `{...value}` copies.
    fn spread(&mut self, value: &V<'a>) -> R<Props<'a>> {
        match value {
            V::Undef | V::Null | V::Bool(_) | V::Num(_) => Ok(Vec::new()),
            V::Obj(o) => Ok(o.props.clone()),
            V::This(instance) => Ok(instance.fields.borrow().clone()),
            V::Fun(_) | V::Class(_) | V::Ref(_) => Ok(Vec::new()),
            _ => no("spreading a value para does not model"),
        }
    }

    fn create_inputs(&mut self, definitions: &V<'a>, kind: &'static str) -> R<V<'a>> {
        let V::Obj(definitions) = definitions else {
            return no("createInputs() of something other than an object");
        };
        let mut out = Vec::with_capacity(definitions.props.len());
        for (key, definition) in &definitions.props {
            let value = match definition {
                V::Obj(d) => V::Obj(Rc::new(Obj {
                    props: d.props.clone(),
                    input: Some(InputMeta { kind, key: Some(key.clone()) }),
                })),
                V::Undef | V::Null | V::Bool(_) | V::Num(_) | V::Str(_) | V::Fun(_) => {
                    definition.clone()
                }
                _ => return no("an input definition para does not model"),
            };
            out.push((key.clone(), value));
        }
        let container = if kind == "input" { "inputs" } else { "configInputs" };
        Ok(V::Obj(Rc::new(Obj {
            props: out,
            input: Some(InputMeta { kind: container, key: None }),
        })))
    }

    fn get_input(&mut self, input: &V<'a>) -> R<V<'a>> {
        let as_input = match input {
            V::Obj(o) => match &o.input {
                Some(meta) if meta.kind == "input" => Some((o, meta)),
                _ => None,
            },
            _ => None,
        };
        if let Some((o, meta)) = as_input {
            let id = match o.props.iter().find(|(k, _)| &**k == "id").map(|(_, v)| v) {
                None | Some(V::Undef | V::Null) => Value::Null,
                Some(V::Str(s)) => json!(&**s),
                Some(_) => return no("an input whose id is not a string"),
            };
            return Ok(reference(
                json!({ "kind": "input", "id": id, "key": meta.key.as_deref(), "path": [] }),
            ));
        }
        let key = match input {
            V::Str(s) => Some(s.to_string()),
            V::Undef | V::Null | V::Bool(_) | V::Num(_) | V::Obj(_) | V::Ref(_) | V::Fun(_) => None,
            _ => return no("getInput() of a value para does not model"),
        };
        if let Some(recording) = &mut self.recording {
            recording.problems.push(json!({ "kind": "notAnInput", "step": null, "detail": key }));
        }
        Ok(reference(json!({ "kind": "input", "id": null, "key": key, "path": [] })))
    }

    // ---------------------------------------------------------------------- serialising

    /// core.js `lower()`: `None` is `undefined`.
    fn lower(&mut self, v: &V<'a>) -> R<Option<Value>> {
        self.tick()?;
        Ok(Some(match v {
            V::Undef => return Ok(None),
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(*b),
            V::Num(n) => number(*n)?,
            V::Str(s) if s.contains(OPEN) => json!({ TEMPLATE: self.split_tokens(s)? }),
            V::Str(s) => json!(&**s),
            V::Ref(r) => json!({ REF: descriptor(r) }),
            V::Step(serial) => json!({ STEP: serial }),
            V::Fun(f) => {
                let Some(source) = f.source else { return no("a method as a value") };
                let name = if f.name.is_empty() { Value::Null } else { json!(&*f.name) };
                json!({ FUNCTION: { "name": name, "source": source } })
            }
            V::Class(class) => {
                let instance = V::This(self.instantiate(class)?);
                let id = match self.get(&instance, "id")? {
                    V::Str(s) => json!(&*s),
                    _ => Value::Null,
                };
                json!({ WORKFLOW: id })
            }
            V::Arr(_) | V::Obj(_) => return self.container(v, Self::lower),
            _ => return no("lowering a value para does not model"),
        }))
    }

    /// `JSON.stringify` of step options: references and steps serialise themselves.
    fn stringify(&mut self, v: &V<'a>) -> R<Option<Value>> {
        self.tick()?;
        Ok(Some(match v {
            V::Undef | V::Fun(_) | V::Class(_) | V::Native(_) => return Ok(None),
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(*b),
            V::Num(n) => number(*n)?,
            V::Str(s) => json!(&**s),
            V::Ref(r) => json!(self.mint(r, BARE)),
            V::Step(serial) => json!({ STEP: serial }),
            V::Obj(o) if o.props.iter().any(|(k, _)| &**k == "toJSON") => {
                return no("an object with its own toJSON");
            }
            V::Arr(_) | V::Obj(_) => return self.container(v, Self::stringify),
            _ => return no("serialising a value para does not model"),
        }))
    }

    /// An array or object serialised item by item with `each`: an item that is `undefined`
    /// becomes `null` in an array and is left out of an object, as in JavaScript.
    fn container(
        &mut self,
        v: &V<'a>,
        each: fn(&mut Self, &V<'a>) -> R<Option<Value>>,
    ) -> R<Option<Value>> {
        Ok(Some(match v {
            V::Arr(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items.iter() {
                    out.push(each(self, item)?.unwrap_or(Value::Null));
                }
                Value::Array(out)
            }
            V::Obj(o) => {
                let mut out = Map::new();
                for (key, value) in &o.props {
                    if let Some(item) = each(self, value)? {
                        out.insert(key.to_string(), item);
                    }
                }
                Value::Object(out)
            }
            _ => return no("a container para does not model"),
        }))
    }

    fn split_tokens(&self, text: &str) -> R<Vec<Value>> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(OPEN) {
            let Some(close) = rest[open..].find(CLOSE).map(|c| open + c) else { break };
            if open > 0 {
                parts.push(json!(&rest[..open]));
            }
            let index: usize = rest[open + OPEN.len_utf8()..close]
                .parse()
                .map_err(|_| Bail::Unsupported("a malformed token".into()))?;
            let Some(descriptor) = self.tokens.get(index) else { return no("an unknown token") };
            parts.push(json!({ REF: descriptor }));
            rest = &rest[close + CLOSE.len_utf8()..];
        }
        if !rest.is_empty() {
            parts.push(json!(rest));
        }
        Ok(parts)
    }
}

fn credentials<'a>() -> V<'a> {
    reference(json!({ "kind": "credential", "path": [] }))
}

fn reference<'a>(base: Value) -> V<'a> {
    V::Ref(Rc::new(Reference { base: Rc::new(base), path: Vec::new() }))
}

fn descriptor(r: &Reference) -> Value {
    let mut descriptor = (*r.base).clone();
    if let Some(Value::Array(path)) = descriptor.get_mut("path") {
        path.extend(r.path.iter().map(|p| json!(&**p)));
    }
    descriptor
}

fn plain<'a>(props: Props<'a>) -> V<'a> {
    V::Obj(Rc::new(Obj { props, input: None }))
}

/// `value ?? {}`.
fn or_empty(value: V<'_>) -> V<'_> {
    match value {
        V::Undef | V::Null => plain(Vec::new()),
        other => other,
    }
}

fn text<'a>(s: &str) -> R<V<'a>> {
    check_text(s)?;
    Ok(V::Str(s.into()))
}

/// Strings holding the token markers would be read as references: not modelled.
fn check_text(s: &str) -> R<()> {
    if s.contains([OPEN, CLOSE, BARE]) {
        return no("a string holding para's private marker characters");
    }
    Ok(())
}

fn truthy(v: &V<'_>) -> bool {
    match v {
        V::Undef | V::Null => false,
        V::Bool(b) => *b,
        V::Num(n) => *n != 0.0 && !n.is_nan(),
        V::Str(s) => !s.is_empty(),
        _ => true,
    }
}

fn is_primitive(v: &V<'_>) -> bool {
    matches!(v, V::Undef | V::Null | V::Bool(_) | V::Num(_) | V::Str(_))
}

/// Inserts a property the way JavaScript orders them: integer keys first, ascending, then the
/// others in insertion order; an existing key keeps its place.
fn put<T>(props: &mut Vec<(Rc<str>, T)>, key: Rc<str>, value: T) {
    if let Some(slot) = props.iter_mut().find(|(k, _)| *k == key) {
        slot.1 = value;
        return;
    }
    match array_index(&key) {
        Some(index) => {
            let at = props
                .iter()
                .position(|(k, _)| array_index(k).is_none_or(|other| other > index))
                .unwrap_or(props.len());
            props.insert(at, (key, value));
        }
        None => props.push((key, value)),
    }
}

/// The array index a property key names, if it is one (canonical, below 2³² − 1).
fn array_index(key: &str) -> Option<usize> {
    if key.is_empty() || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    (n < u32::MAX as u64).then_some(n as usize)
}

fn static_key(key: &PropertyKey<'_>) -> Option<String> {
    match key {
        PropertyKey::StaticIdentifier(id) => Some(id.name.as_str().to_string()),
        PropertyKey::StringLiteral(s) if !s.lone_surrogates => Some(s.value.as_str().to_string()),
        PropertyKey::NumericLiteral(n) => js_number(n.value).ok(),
        _ => None,
    }
}

fn export_name<'b>(name: &'b ModuleExportName<'_>) -> &'b str {
    match name {
        ModuleExportName::IdentifierName(n) => n.name.as_str(),
        ModuleExportName::IdentifierReference(n) => n.name.as_str(),
        ModuleExportName::StringLiteral(s) => s.value.as_str(),
    }
}

fn declared_names<'a>(declaration: &'a Declaration<'a>) -> R<Vec<&'a str>> {
    Ok(match declaration {
        Declaration::VariableDeclaration(d) => {
            let mut names = Vec::new();
            for declarator in &d.declarations {
                let BindingPattern::BindingIdentifier(id) = &declarator.id else {
                    return no("a destructuring declaration");
                };
                names.push(id.name.as_str());
            }
            names
        }
        Declaration::FunctionDeclaration(f) => f.id.iter().map(|id| id.name.as_str()).collect(),
        Declaration::ClassDeclaration(c) => c.id.iter().map(|id| id.name.as_str()).collect(),
        _ => Vec::new(),
    })
}

/// `Number.prototype.toString()` for the numbers it prints without an exponent.
fn js_number(n: f64) -> R<String> {
    if n.is_nan() {
        return Ok("NaN".into());
    }
    if n == 0.0 {
        return Ok("0".into());
    }
    if n.is_infinite() {
        return Ok(if n > 0.0 { "Infinity" } else { "-Infinity" }.into());
    }
    let magnitude = n.abs();
    if !(1e-6..1e21).contains(&magnitude) {
        return no("a number JavaScript prints with an exponent");
    }
    if n.fract() == 0.0 {
        if magnitude >= EXACT_INTEGERS {
            return no("a very large integer");
        }
        return Ok(format!("{}", n as i64));
    }
    Ok(format!("{n}"))
}

/// Integers from here on are printed by JavaScript with their shortest digits padded with zeros
/// (`2 ** 60` prints as 1152921504606847000): not modelled.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A number as `JSON.stringify` writes it and `serde_json` reads it back.
fn number(n: f64) -> R<Value> {
    if !n.is_finite() {
        return Ok(Value::Null);
    }
    if n == 0.0 {
        return Ok(json!(0u64));
    }
    if n.fract() == 0.0 {
        if n.abs() >= EXACT_INTEGERS {
            return no("a very large integer");
        }
        return Ok(json!(n as i64));
    }
    Ok(json!(n))
}
