//! Per-function instruction counts and call edges from the Callgrind outputs Gungraun writes
//! for each benchmark
//! (`<GUNGRAUN_HOME>/<package>/<bench>/<group>/<function>.<id>/callgrind.<function>.<id>.out`),
//! so that a report can say *which* functions an instruction regression is in, and draw them
//! as a flame graph.
//!
//! [`parse`] is pure: it reads the Callgrind format's `positions:`, `events:`, `fl=`/`fi=`/`fe=`,
//! `fn=`, `cfn=`, `calls=` and cost lines, with or without name compression (`fn=(12) name`,
//! later `fn=(12)`; `cfn=` shares `fn=`'s table). A function's *exclusive* count is the `Ir` of
//! its own cost lines; its *inclusive* count adds the `Ir` of the calls it makes (the cost line
//! after each `calls=`). A recursive function's inclusive count includes its recursion, as
//! `callgrind_annotate`'s does. A *call edge* is the `Ir` of the cost lines after `calls=` from
//! one `fn=` to one `cfn=`, summed over its call sites; only edges of at least
//! [`MIN_CALL_SHARE`] of the benchmark's instructions are kept (see there why).

use std::collections::BTreeMap;
use std::path::Path;

use crate::record::{CallEdge, FunctionCost, MIN_CALL_SHARE};

/// What one Callgrind output says about a benchmark's functions.
#[derive(Debug, Default, PartialEq)]
pub struct Profile {
    /// By name, largest inclusive count first.
    pub functions: Vec<FunctionCost>,
    /// The call edges of at least [`MIN_CALL_SHARE`] of the benchmark's instructions (the sum of
    /// every function's exclusive count), largest first.
    pub calls: Vec<CallEdge>,
}

/// The functions and call edges of one Callgrind output.
pub fn parse(text: &str) -> Profile {
    let mut parser = Parser::default();
    for line in text.lines() {
        parser.line(line.trim_end());
    }
    parser.finish()
}

#[derive(Default)]
struct Parser {
    /// Columns before the events on a cost line (`positions: line` is 1, `instr line` 2).
    positions: usize,
    /// Which event column is `Ir`.
    ir_column: usize,
    /// Compressed names seen so far, by id, for `fn=` and `cfn=` (one table, as Callgrind's).
    names: BTreeMap<String, String>,
    current: Option<String>,
    /// The function the last `cfn=` named: the callee of the next `calls=`.
    callee: Option<String>,
    /// The next cost line is a call's inclusive cost.
    in_call: bool,
    /// The callee of the call whose cost is the next cost line.
    call_to: Option<String>,
    /// (exclusive, inclusive) by function.
    costs: BTreeMap<String, (u64, u64)>,
    /// Inclusive cost by (caller, callee).
    edges: BTreeMap<(String, String), u64>,
}

impl Parser {
    fn line(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix("positions:") {
            self.positions = rest.split_whitespace().count().max(1);
        } else if let Some(rest) = line.strip_prefix("events:") {
            self.ir_column = rest.split_whitespace().position(|e| e == "Ir").unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            let name = self.name(rest);
            self.costs.entry(name.clone()).or_default();
            self.current = Some(name);
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            // The callee's own costs come under its `fn=`; here it names the next call's callee.
            self.callee = Some(self.name(rest));
        } else if line.starts_with("calls=") {
            // Callgrind names the callee before every `calls=`; a call without one still counts
            // in its caller's inclusive cost, but makes no edge.
            self.in_call = true;
            self.call_to = self.callee.take();
        } else if line.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '*')) {
            self.cost(line);
        }
    }

    /// The name of `fn=`/`cfn=`'s value, resolving and registering compression ids.
    fn name(&mut self, value: &str) -> String {
        let value = value.trim();
        let Some(rest) = value.strip_prefix('(') else {
            return value.to_owned();
        };
        let Some((id, name)) = rest.split_once(')') else {
            return value.to_owned();
        };
        let name = name.trim();
        if name.is_empty() {
            self.names
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("({id})"))
        } else {
            self.names.insert(id.to_owned(), name.to_owned());
            name.to_owned()
        }
    }

    fn cost(&mut self, line: &str) {
        let ir = line
            .split_whitespace()
            .nth(self.positions.max(1) + self.ir_column)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0);
        let in_call = std::mem::take(&mut self.in_call);
        let call_to = self.call_to.take();
        let Some(function) = &self.current else {
            return;
        };
        let (exclusive, inclusive) = self.costs.entry(function.clone()).or_default();
        *inclusive += ir;
        if !in_call {
            *exclusive += ir;
        } else if let Some(callee) = call_to {
            *self.edges.entry((function.clone(), callee)).or_default() += ir;
        }
    }

    fn finish(self) -> Profile {
        let total: u64 = self.costs.values().map(|(exclusive, _)| exclusive).sum();
        let least = (total as f64 * MIN_CALL_SHARE).ceil().max(1.0) as u64;
        let mut calls: Vec<CallEdge> = self
            .edges
            .into_iter()
            .filter(|(_, inclusive)| *inclusive >= least)
            .map(|((caller, callee), inclusive)| CallEdge {
                caller,
                callee,
                inclusive,
            })
            .collect();
        calls.sort_by(|a, b| {
            (b.inclusive.cmp(&a.inclusive))
                .then_with(|| (&a.caller, &a.callee).cmp(&(&b.caller, &b.callee)))
        });
        let mut functions: Vec<FunctionCost> = self
            .costs
            .into_iter()
            .filter(|(_, (_, inclusive))| *inclusive > 0)
            .map(|(name, (exclusive, inclusive))| FunctionCost {
                name,
                exclusive,
                inclusive,
            })
            .collect();
        functions.sort_by(|a, b| b.inclusive.cmp(&a.inclusive).then(a.name.cmp(&b.name)));
        Profile { functions, calls }
    }
}

/// Every benchmark's profile under a Gungraun home, by metric name
/// (`instructions/<group>/<function>/<id>`). Outputs Gungraun keeps from earlier runs
/// (`*.out.old`, `*.out.base@…`) are not read. Unreadable files are left out: the functions are
/// an explanation, never a measurement.
pub fn read_home(home: &Path) -> BTreeMap<String, Profile> {
    let mut found = BTreeMap::new();
    visit(home, &mut found);
    found
}

fn visit(dir: &Path, found: &mut BTreeMap<String, Profile>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, found);
            continue;
        }
        let Some(name) = metric_of(&path) else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            found.insert(name, parse(&text));
        }
    }
}

/// `instructions/<group>/<function>/<id>` of `…/<group>/<function>.<id>/callgrind.<function>.<id>.out`.
fn metric_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let bench = file.strip_prefix("callgrind.")?.strip_suffix(".out")?;
    let dir = path.parent()?;
    if dir.file_name()?.to_str()? != bench {
        return None;
    }
    let group = dir.parent()?.file_name()?.to_str()?;
    let (function, id) = bench.split_once('.')?;
    Some(format!("instructions/{group}/{function}/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "# callgrind format\nversion: 1\npositions: line\n\
        events: Ir Dr Dw\nsummary: 1100 0 0\n\n\
        ob=/bin/bench\nfl=???\nfn=(1) bench::main\n10 5\ncfn=(2) bench::decode\ncalls=1 0\n\
        11 1000 3 3\n12 5\n\
        fl=src/decode.rs\nfn=(2)\n20 900\n+1 50\ncfn=(3) alloc\ncalls=2 0\n21 50\n\
        fn=(3)\n1 50\n";

    #[test]
    fn exclusive_and_inclusive_counts_per_function_with_compressed_names() {
        let functions = parse(OUTPUT).functions;
        let of = |name: &str| {
            functions
                .iter()
                .find(|f| f.name == name)
                .map(|f| (f.exclusive, f.inclusive))
        };
        assert_eq!(of("bench::main"), Some((10, 1010)));
        assert_eq!(of("bench::decode"), Some((950, 1000)));
        assert_eq!(of("alloc"), Some((50, 50)));
        assert_eq!(functions[0].name, "bench::main", "largest inclusive first");
    }

    /// `work<T>` is first named by a `cfn=` (its compression id then serves its `fn=` and a
    /// later `cfn=`), `main` calls it from two sites, and `main`'s call of `tiny` carries less
    /// than 0.1% of the benchmark (5 of 8,015 instructions).
    const CALLS: &str = "positions: line\nevents: Ir\n\
        fn=(1) main\n1 10\ncfn=(2) work<T>\ncalls=1 0\n2 5000\ncfn=(2)\ncalls=3 0\n3 3000\n\
        cfn=(3) tiny\ncalls=1 0\n4 5\n\
        fn=(2)\n1 7000\ncfn=(4) alloc\ncalls=10 0\n2 1000\n\
        fn=(3)\n1 5\nfn=(4)\n1 1000\n";

    #[test]
    fn call_edges_are_summed_over_call_sites_through_compressed_names() {
        let edge = |caller: &str, callee: &str, inclusive| CallEdge {
            caller: caller.to_owned(),
            callee: callee.to_owned(),
            inclusive,
        };
        let profile = parse(CALLS);
        assert_eq!(
            profile.calls,
            vec![
                edge("main", "work<T>", 8000),
                edge("work<T>", "alloc", 1000)
            ],
            "largest first; main's call of tiny is under the threshold"
        );
        let of = |name: &str| profile.functions.iter().find(|f| f.name == name).cloned();
        assert_eq!(
            of("work<T>").map(|f| (f.exclusive, f.inclusive)),
            Some((7000, 8000))
        );
        assert_eq!(of("main").map(|f| f.inclusive), Some(8015));
    }

    #[test]
    fn a_call_without_a_named_callee_makes_no_edge() {
        let text = "events: Ir\nfn=f\n1 10\ncfn=g\ncalls=1 0\n2 30\ncalls=1 0\n3 40\nfn=g\n1 70\n";
        let profile = parse(text);
        assert_eq!(profile.calls.len(), 1, "{:?}", profile.calls);
        assert_eq!(profile.calls[0].inclusive, 30);
        assert_eq!(profile.functions[0].inclusive, 80, "both calls count in f");
    }

    #[test]
    fn the_ir_column_is_found_after_the_positions() {
        let text = "positions: instr line\nevents: Dr Ir\nfn=f\n0x10 3 7 40\n";
        let functions = parse(text).functions;
        assert_eq!((functions[0].exclusive, functions[0].inclusive), (40, 40));
    }

    #[test]
    fn a_benchmarks_output_file_names_its_metric() {
        let path = Path::new(
            "home/bench-suite/instructions/query/due_cards_row_decode.page_of_50/\
             callgrind.due_cards_row_decode.page_of_50.out",
        );
        assert_eq!(
            metric_of(path).as_deref(),
            Some("instructions/query/due_cards_row_decode/page_of_50")
        );
        assert_eq!(metric_of(&path.with_extension("out.old")), None);
        assert_eq!(metric_of(Path::new("home/x/callgrind.other.out")), None);
    }
}
