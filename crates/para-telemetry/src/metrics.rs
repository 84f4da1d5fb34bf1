//! A small Prometheus registry: counters, per-status counts and histograms over atomics with
//! fixed buckets, labelled families behind a lock where the labels are only known at run time
//! (a workflow id, a route), and the text exposition format (0.0.4) they are rendered in.
//!
//! Recording never allocates for an unlabelled metric (a few relaxed atomic additions), so the
//! proxy's path can count every request; a family allocates only the first time it sees a
//! label value. Rendering sorts by label so a scrape reads the same from one time to the next.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A number that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts per HTTP status (100 to 599), one atomic each: counting a response allocates
/// nothing and takes no lock.
pub struct StatusCounts {
    counts: Box<[AtomicU64]>,
}

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts { counts: (100..600).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl StatusCounts {
    /// Counts one response; a status outside 100–599 counts as 599 (hyper sends none).
    pub fn inc(&self, status: u16) {
        let index = usize::from(status.clamp(100, 599) - 100);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The statuses counted at least once, with their counts, in order.
    pub fn nonzero(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.counts.iter().enumerate().filter_map(|(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then_some((i as u16 + 100, n))
        })
    }
}

/// Buckets for request latencies, in seconds (1 ms to 10 s).
pub const REQUEST_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for steps' durations, in seconds (5 ms to 5 min: a step may wait on a slow API).
pub const STEP_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A distribution of durations over fixed buckets. Observing is three relaxed atomic additions
/// (the bucket, the count, the sum in nanoseconds) after a scan of the bounds.
pub struct Histogram {
    /// Upper bounds in seconds, ascending (the `le` labels).
    bounds: &'static [f64],
    /// The same bounds in nanoseconds, for comparing without floating point.
    bounds_ns: Box<[u64]>,
    /// Observations per bucket, not cumulative (the last one is `+Inf`); summed when rendered.
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_ns.iter().position(|b| ns <= *b).unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observes a duration in milliseconds (a journal's timestamps); a negative one counts as 0.
    pub fn observe_ms(&self, ms: i64) {
        self.observe(Duration::from_millis(ms.max(0) as u64));
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Metrics of one kind told apart by label values known only at run time (a workflow id, a
/// route). The values are kept in a map behind a lock, each metric in an `Arc` so that it is
/// updated after the lock is released. The label values a caller passes must come from a
/// bounded set (the build's workflows, the router's route templates), never from a request.
pub struct Family<M> {
    labels: &'static [&'static str],
    make: fn() -> M,
    /// Keyed by the label values joined with NUL (one value: the value itself, so that a
    /// lookup of a known value allocates nothing).
    items: Mutex<HashMap<String, Labelled<M>>>,
}

/// A family's metric with its label values.
type Labelled<M> = (Box<[String]>, Arc<M>);

impl<M> Family<M> {
    pub fn new(labels: &'static [&'static str], make: fn() -> M) -> Family<M> {
        Family { labels, make, items: Mutex::default() }
    }

    /// The metric of these label values (as many as the family has labels), made on first use.
    pub fn get(&self, values: &[&str]) -> Arc<M> {
        debug_assert_eq!(values.len(), self.labels.len(), "label values of {:?}", self.labels);
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let found = match values {
            [one] => items.get(*one),
            _ => items.get(&values.join("\0")),
        };
        if let Some((_, metric)) = found {
            return metric.clone();
        }
        let metric = Arc::new((self.make)());
        let owned: Box<[String]> = values.iter().map(|v| v.to_string()).collect();
        items.insert(values.join("\0"), (owned, metric.clone()));
        metric
    }

    /// Every labelled metric, sorted by its label values.
    pub fn sorted(&self) -> Vec<Labelled<M>> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = items.values().map(|(l, m)| (l.clone(), m.clone())).collect();
        drop(items);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl Family<Counter> {
    /// Adds one to the counter of these label values.
    pub fn inc(&self, values: &[&str]) {
        self.get(values).inc();
    }
}

impl Family<Histogram> {
    pub fn observe(&self, values: &[&str], elapsed: Duration) {
        self.get(values).observe(elapsed);
    }
}

/// A scrape's text, in the Prometheus text exposition format 0.0.4.
#[derive(Default)]
pub struct Text {
    out: String,
}

/// The `Content-Type` of [`Text`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    pub fn finish(self) -> String {
        self.out
    }

    /// The `# HELP` and `# TYPE` lines of a metric (once, before its samples).
    pub fn header(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample line: `name{label="value",…} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, text)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_into(&mut self.out, text);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// An unlabelled counter or gauge, with its header.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.header(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A labelled counter family, with its header (the header alone when it is empty, so the
    /// metric's name is always listed).
    pub fn counters(&mut self, name: &str, help: &str, family: &Family<Counter>) {
        self.header(name, "counter", help);
        for (values, counter) in family.sorted() {
            let labels: Vec<(&str, &str)> =
                family.labels.iter().copied().zip(values.iter().map(String::as_str)).collect();
            self.sample(name, &labels, counter.get());
        }
    }

    /// A labelled histogram family, with its header.
    pub fn histograms(&mut self, name: &str, help: &str, family: &Family<Histogram>) {
        self.header(name, "histogram", help);
        for (values, histogram) in family.sorted() {
            let labels: Vec<(&str, &str)> =
                family.labels.iter().copied().zip(values.iter().map(String::as_str)).collect();
            self.histogram_samples(name, &labels, &histogram);
        }
    }

    /// An unlabelled histogram, with its header.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.header(name, "histogram", help);
        self.histogram_samples(name, &[], histogram);
    }

    /// A histogram's `_bucket` (cumulative, `le` last), `_sum` (seconds) and `_count` lines.
    pub fn histogram_samples(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, counted) in h.buckets.iter().enumerate() {
            cumulative += counted.load(Ordering::Relaxed);
            let le = h.bounds.get(i).map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&bucket, &with_le, cumulative);
        }
        // The count is read after the buckets: a concurrent observation may make it larger
        // than `+Inf` for one scrape, which Prometheus tolerates; never smaller.
        let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative.max(h.count()));
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = Histogram::new(&[0.01, 0.1, 1.0]);
        for ms in [5, 50, 50, 2000] {
            h.observe_ms(ms);
        }
        let mut text = Text::new();
        text.histogram("t_seconds", "A test.", &h);
        let text = text.finish();
        let expected = "# HELP t_seconds A test.\n# TYPE t_seconds histogram\n\
            t_seconds_bucket{le=\"0.01\"} 1\nt_seconds_bucket{le=\"0.1\"} 3\n\
            t_seconds_bucket{le=\"1\"} 3\nt_seconds_bucket{le=\"+Inf\"} 4\n\
            t_seconds_sum 2.105\nt_seconds_count 4\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn families_sort_by_label_and_escape_values() {
        let family = Family::new(&["workflow", "trigger"], Counter::default);
        family.inc(&["b", "cron"]);
        family.inc(&["a\"\\\n", "event"]);
        family.inc(&["b", "cron"]);
        let mut text = Text::new();
        text.counters("runs_total", "Runs.", &family);
        let lines: Vec<&str> = text.out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                r#"runs_total{workflow="a\"\\\n",trigger="event"} 1"#,
                r#"runs_total{workflow="b",trigger="cron"} 2"#
            ]
        );
    }

    #[test]
    fn statuses_are_counted_each() {
        let s = StatusCounts::default();
        s.inc(200);
        s.inc(200);
        s.inc(404);
        s.inc(1000);
        assert_eq!(s.nonzero().collect::<Vec<_>>(), [(200, 2), (404, 1), (599, 1)]);
    }
}
